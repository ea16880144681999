"""Compute and store the latent products of a (survey, encoder version): map, index, scores.

These are the builders behind ``python -m backend map|index|score`` and
:func:`backend.pipeline.runner.ensure`. Each reads the memory-mapped embeddings, writes its files
into a staging folder, publishes them into ``products/<survey>/encoder-<version>/`` together
(:func:`backend.pipeline.storage.publish`) and then writes the product's lineage record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backend.latent.anomaly import (
    DEFAULT_COMBINE,
    DEFAULT_SCORERS,
    PIXEL_SCORERS,
    RESIDUAL_SCORERS,
    AnomalyRanker,
)
from backend.latent.combination import needed_scorers
from backend.latent.errors import LatentError
from backend.latent.image_scores import survey_pixel_scores
from backend.latent.labelled import labelled_anomalies
from backend.latent.projection import LatentMap, MapParams
from backend.latent.scorers import by_cells
from backend.latent.search import SimilarityIndex
from backend.latent.source import (
    ANOMALY_FILE,
    INDEX_FILE,
    latent_dir,
    resolve_encoder_version,
)
from backend.pipeline.kinds import PRODUCTS, Target
from backend.pipeline.storage import (
    INDEX_DATA_FILE,
    ProductError,
    open_embeddings,
    publish,
    read_predictions,
)
from backend.registry import ModelRegistry
from backend.survey import Survey

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a pipeline step made, for the CLI to report."""

    survey: str
    version: str
    path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _inputs(survey_name: str, version: str | None) -> tuple[Survey, str, np.ndarray]:
    survey = Survey.open(survey_name)
    version = resolve_encoder_version(survey.name, version)
    embeddings = open_embeddings(survey.name, "encoder", version)
    if len(embeddings) != len(survey):
        raise LatentError(
            f"embeddings of survey {survey.name} ({version}) have {len(embeddings):,} rows for "
            f"{len(survey):,} objects; re-embed the survey"
        )
    return survey, version, embeddings


def _finish(survey: str, version: str, product: str, params: dict[str, Any], timer: float) -> None:
    """Write the lineage record of a product just published."""
    from backend.pipeline.build import record

    record(Target(product, survey, "encoder", version), params, time.perf_counter() - timer)


def make_map(
    survey_name: str,
    version: str | None = None,
    params: MapParams | None = None,
    progress: bool = False,
    scheduler: Any = None,
) -> Outcome:
    """Fit the 2-D map and write ``map.npy`` + landmarks (then its lineage record)."""
    from backend.pipeline.build import with_scheduler

    started = time.perf_counter()
    survey, version, embeddings = _inputs(survey_name, version)
    params = params or MapParams()
    latent_map = with_scheduler(
        LatentMap.fit, scheduler, embeddings=embeddings, params=params, progress=progress
    )
    directory = latent_dir(survey.name, version)
    with publish(directory, PRODUCTS["map"].files) as staging:
        latent_map.save(staging)
    _finish(survey.name, version, "map", asdict(params), started)
    return Outcome(
        survey.name, version, directory, time.perf_counter() - started, info=latent_map.info
    )


def make_index(
    survey_name: str,
    version: str | None = None,
    kind: str = "auto",
    progress: bool = False,
    scheduler: Any = None,
) -> Outcome:
    """Build and write the similarity index (then its lineage record)."""
    from backend.pipeline.build import with_scheduler

    started = time.perf_counter()
    survey, version, embeddings = _inputs(survey_name, version)
    directory = latent_dir(survey.name, version)
    names = list(PRODUCTS["index"].files)
    with publish(directory, names) as staging:
        index = with_scheduler(
            SimilarityIndex.build, scheduler, embeddings=embeddings, kind=kind,
            progress=progress, workdir=staging,
        )  # fmt: skip
        if index.kind == "ivfpq":  # its lists file (built in the staging folder) moves first
            names.insert(0, INDEX_DATA_FILE)
        index.save(staging)
    if index.kind != "ivfpq":  # a compressed index made before: its lists file is stale
        (directory / INDEX_DATA_FILE).unlink(missing_ok=True)
    _finish(survey.name, version, "index", {"kind": kind}, started)
    return Outcome(survey.name, version, directory, time.perf_counter() - started, info=index.info)


def make_scores(
    survey_name: str,
    version: str | None = None,
    scorers: tuple[str, ...] = DEFAULT_SCORERS,
    progress: bool = False,
    scheduler: Any = None,
    combine_with: str = DEFAULT_COMBINE,
) -> Outcome:
    """Score anomalies and write ``anomaly.parquet`` (then its lineage record). Pixel scorers
    read the survey's ``pixel_scores`` product, made first (per partition where ``scheduler``
    says) only when missing or outdated; residual scorers read the active autoencoder's
    predictions, only when asked for."""
    from backend.pipeline.build import with_scheduler

    started = time.perf_counter()
    survey, version, embeddings = _inputs(survey_name, version)
    directory = latent_dir(survey.name, version)
    notes: list[str] = []
    asked = [RESIDUAL_SCORERS[n] for n in scorers if n in RESIDUAL_SCORERS]
    residuals = autoencoder_scores(survey, notes, scorers) if asked else None
    used = tuple(scorers)
    if residuals and asked and not any(c in residuals for c in asked):
        used = ("recon", *scorers)  # predictions without the columns asked: the mean residual
    pixels, psf = None, {}
    if set(PIXEL_SCORERS) & set(scorers):
        pixels, psf, made = survey_pixel_scores(survey, scheduler, progress)
        notes.append(
            f"pixel scores {'computed' if made else 'read from the survey product'}: PSF "
            f"sharpness {psf['q_psf']:.2f} (limit {psf['q_limit']:.2f}, PSF sigma "
            f"{psf['psf_sigma']:.2f} px)"
        )
    labelled = labelled_anomalies(survey)
    if labelled is not None:
        notes.append(
            f"{int(labelled.positive.sum())} labelled anomalies ({', '.join(labelled.classes)}; "
            f"{int((labelled.positive & labelled.held_out).sum())} of them held out) choose "
            "how the scorers are combined"
        )
        needed = set(PIXEL_SCORERS) & set(needed_scorers())
        if needed and pixels is None:
            pixels, psf, _ = survey_pixel_scores(survey, scheduler, progress)
    index = None
    if (directory / INDEX_FILE).is_file() and not by_cells(len(embeddings)):
        index = SimilarityIndex.load(directory, embeddings)
        notes.append(f"kNN distances from the saved {index.kind} index")
    ranker = with_scheduler(
        AnomalyRanker.fit, scheduler, embeddings=embeddings, residuals=residuals,
        scorers=used, object_ids=survey.catalog["object_id"].to_numpy(), index=index,
        combine_with=combine_with, progress=progress, pixels=pixels,
        labelled=None if labelled is None else (labelled.positive, labelled.held_out),
    )  # fmt: skip
    ranker.scores.attrs["encoder"] = version
    choice = ranker.scores.attrs.get("combination")
    if choice is not None and labelled is not None:
        choice["labels"] = labelled.to_dict()
        notes.append(f"combined by {choice['formula']}: {choice['reason']}")
    knn = ranker.scores.attrs.get("scoring", {}).get("knn", {})
    if knn.get("method") == "cells":
        notes.append(
            f"kNN by cells: {knn['probes']} of {knn['leaves']:,} leaves probed, recall@10 "
            f"{knn['recall_at_k']:.3f} and score rank correlation {knn['score_spearman']:.3f} "
            "against exact search on a sample"
        )
    if psf:
        ranker.scores.attrs["pixel_scores"] = psf
    with publish(directory, PRODUCTS["scores"].files) as staging:
        ranker.save(staging / ANOMALY_FILE)
    params = {"scorers": list(scorers), "combine": combine_with}
    _finish(survey.name, version, "scores", params, started)
    return Outcome(
        survey.name,
        version,
        directory / ANOMALY_FILE,
        time.perf_counter() - started,
        notes,
        info={
            "scorers": ranker.scorers,
            "combined_with": choice["formula"] if choice else combine_with,
        },
    )


def autoencoder_scores(
    survey: Survey, notes: list[str], scorers: tuple[str, ...] = ()
) -> dict[str, np.ndarray] | None:
    """The residual columns (``recon_error``, and those of ``scorers`` among ``recon_peak``,
    ``recon_excess``) of the survey's active (else latest) autoencoder, or None (noted)."""
    registry = ModelRegistry()
    version = registry.active(survey.name, "autoencoder") or registry.latest(
        "autoencoder", survey.name
    )
    if version is None:
        notes.append("no autoencoder for this survey: reconstruction-error scorer skipped")
        return None
    try:
        table = read_predictions(survey.name, "autoencoder", version.version)
    except ProductError:
        notes.append(
            f"autoencoder {version.version} has no predictions product: reconstruction-error "
            f"scorer skipped (run `python -m backend predict --survey {survey.name}`)"
        )
        return None
    if "recon_error" not in table.columns or len(table) != len(survey):
        notes.append(
            f"autoencoder {version.version} predictions lack a recon_error per object: "
            "reconstruction-error scorer skipped"
        )
        return None
    notes.append(f"reconstruction errors from autoencoder {version.version}")
    out = {"recon_error": table["recon_error"].to_numpy(np.float32)}
    for name in ("recon_peak", "recon_excess"):
        if name not in scorers:
            continue
        if name in table.columns:
            out[name] = table[name].to_numpy(np.float32)
        else:
            notes.append(
                f"autoencoder {version.version} predictions lack {name} (made before it "
                f"existed): {name} scorer skipped (run `python -m backend predict`)"
            )
    return out


def autoencoder_errors(survey: Survey, notes: list[str]) -> np.ndarray | None:
    """``recon_error`` of the survey's active (else latest) autoencoder, or None (noted)."""
    found = autoencoder_scores(survey, notes)
    return None if found is None else found["recon_error"]
