"""The pixel scorers of a whole survey (:mod:`backend.latent.morphology`), per partition, and
the survey's ``pixel_scores`` product that keeps them.

The survey's PSF sharpness (hence the sharpness limit and the PSF's sigma, the asymmetry's
smoothing) is measured once on an even sample of its cutouts; each partition
(a task, run where the scheduler says) then reads its rows batch by batch and scores them.

The scores depend on the survey's pixels and the scorers alone, not on any model, so they are a
product of the survey (``products/<survey>/survey/pixel_scores.parquet``, one row per object in
survey order, the measured PSF in its metadata), made once and read by every encoder's scores
product; its lineage names the images and the scorers' parameters and code
(:func:`scorer_identity`), so a re-ingest or a change of the scorers remakes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend.latent import morphology
from backend.latent.anomaly import PIXEL_SCORERS
from backend.latent.errors import LatentError
from backend.latent.morphology import (
    SAMPLE,
    pixel_scores,
    psf_sharpness,
    psf_sigma,
    sharpness_limit,
)
from backend.pipeline.execution import even_partitions, executor
from backend.survey import Survey

IMAGE_SCORERS = PIXEL_SCORERS  # what pixel_scores returns
PARTITION_ROWS = 65536  # ~1 ms a 64x64x4 cutout: a 10k survey runs in this process, no cluster
BATCH = 256  # cutouts per numpy pass (a 64x64x4 batch is ~17 MB per temporary)
FORMAT = 1  # of the product (and of how the PSF is sampled): a new one remakes every survey's
PSF_KEY = b"latentsky.pixel_scores.psf"  # the measured PSF, in the parquet file's metadata


@dataclass(frozen=True)
class PixelPartition:
    """The pixel scores of rows ``[lo, hi)`` of a survey (a task)."""

    survey: str
    q_limit: float
    smooth: float
    batch: int = BATCH

    def __call__(self, rows: tuple[int, int]) -> dict[str, np.ndarray]:
        survey = Survey.open(self.survey)
        found: dict[str, list[np.ndarray]] = {name: [] for name in IMAGE_SCORERS}
        for _, images in survey.iter_batches(self.batch, rows[0], rows[1]):
            for name, values in pixel_scores(images, self.q_limit, self.smooth).items():
                found[name].append(values)
        return {name: np.concatenate(parts) for name, parts in found.items()}


def survey_psf_sharpness(survey: Survey) -> float:
    """``q_psf`` of the survey, from at most :data:`SAMPLE` cutouts spread over it."""
    n = len(survey)
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLE)).astype(np.int64))
    return psf_sharpness(survey.cutouts(rows))


def image_scores(
    survey: Survey, scheduler: Any = None, progress: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(raw ``sharpness`` and ``asymmetry`` of every object, {"q_psf", "q_limit",
    "psf_sigma"})."""
    q_psf = survey_psf_sharpness(survey)
    task = PixelPartition(survey.name, sharpness_limit(q_psf), psf_sigma(q_psf))
    parts = even_partitions(len(survey), PARTITION_ROWS)
    with executor(scheduler) as ex:
        found = ex.map(task, parts, desc="pixel scores" if progress and len(parts) > 1 else None)
    scores = {name: np.concatenate([f[name] for f in found]) for name in IMAGE_SCORERS}
    psf = {"q_psf": q_psf, "q_limit": task.q_limit, "psf_sigma": task.smooth}
    return scores, {k: round(v, 4) for k, v in psf.items()}


def scorer_identity() -> dict[str, Any]:
    """What the pixel scores are made with besides the pixels: the product's format, the
    scorers' parameters and a hash of their code (:mod:`backend.latent.morphology`)."""
    code = hashlib.sha256(Path(morphology.__file__).read_bytes()).hexdigest()[:16]
    params = {
        "peak_sigma": morphology.PEAK_SIGMA, "psf_percentile": morphology.PSF_PERCENTILE,
        "min_peaks": morphology.MIN_PEAKS, "default_q_psf": morphology.DEFAULT_Q_PSF,
        "sample": SAMPLE,
    }  # fmt: skip
    return {"format": FORMAT, "scorers": list(IMAGE_SCORERS), "params": params, "code": code}


def _target(survey: str) -> Any:
    from backend.pipeline.kinds import survey_target

    return survey_target("pixel_scores", survey)


def make_pixel_scores(
    survey_name: str, scheduler: Any = None, progress: bool = False
) -> dict[str, float]:
    """Score every cutout of the survey (:func:`image_scores`), publish its ``pixel_scores``
    product atomically, then its lineage record; returns the measured PSF."""
    import time

    from backend.pipeline.build import record
    from backend.pipeline.kinds import PIXEL_SCORES_FILE
    from backend.pipeline.storage import publish

    started = time.perf_counter()
    survey = Survey.open(survey_name)
    scores, psf = image_scores(survey, scheduler, progress)
    table = pa.table({name: pa.array(scores[name], pa.float32()) for name in IMAGE_SCORERS})
    table = table.replace_schema_metadata({PSF_KEY: json.dumps(psf).encode()})
    target = _target(survey.name)
    with publish(target.directory, [PIXEL_SCORES_FILE]) as staging:
        pq.write_table(table, staging / PIXEL_SCORES_FILE)
    record(target, None, time.perf_counter() - started)
    return psf


def read_pixel_scores(survey: Survey) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(raw scores of every object, measured PSF) from the survey's ``pixel_scores`` product."""
    from backend.pipeline.kinds import PIXEL_SCORES_FILE

    path = _target(survey.name).directory / PIXEL_SCORES_FILE
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise LatentError(f"{path}: cannot read the pixel scores ({exc})") from exc
    missing = [n for n in IMAGE_SCORERS if n not in table.column_names]
    if missing or table.num_rows != len(survey):
        raise LatentError(
            f"{path}: {table.num_rows:,} rows with columns {table.column_names} for "
            f"{len(survey):,} objects and scorers {list(IMAGE_SCORERS)}; remake it with "
            f"`python -m backend products --survey {survey.name} --products pixel_scores --ensure`"
        )
    scores = {n: table.column(n).to_numpy().astype(np.float32, copy=False) for n in IMAGE_SCORERS}
    psf = json.loads((table.schema.metadata or {}).get(PSF_KEY, b"{}"))
    return scores, psf


def survey_pixel_scores(
    survey: Survey, scheduler: Any = None, progress: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, float], bool]:
    """(raw scores, measured PSF, whether they were computed now): the survey's ``pixel_scores``
    product, made first when missing or outdated (one build at a time across processes)."""
    from backend.pipeline.build import build_lock, is_current

    target = _target(survey.name)
    made = False
    with build_lock(target):
        if not is_current(target):
            make_pixel_scores(survey.name, scheduler, progress)
            made = True
    scores, psf = read_pixel_scores(survey)
    return scores, psf, made
