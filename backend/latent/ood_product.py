"""The ``ood`` product of a survey and encoder, and the encoder's stored OOD reference.

The reference lives in the encoder version's folder (``ood_reference.npz``, see
:mod:`backend.latent.ood`): a sample of the embeddings of the survey the encoder was trained
on (its ``meta.json`` ``training.survey``), written once, the first time it is needed (or by
:func:`save_reference_for` after training). The product is ``ood.parquet`` (object_id,
ood_score) and ``ood.json`` (the survey-level summary) beside the encoder's other products.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.latent import ood
from backend.pipeline.kinds import OOD_FILE, OOD_META_FILE
from backend.pipeline.storage import ProductError, has_embeddings, open_embeddings, publish
from backend.rowtable import ROW_GROUP

#: the verdict of an imported encoder's own survey: its reference is that survey's embeddings
NO_REFERENCE = "no reference: scored against itself"
#: objects of a survey embedded for an imported encoder's reference (a stratified sample)
IMPORT_SAMPLE = 2000


def is_imported(version: Any) -> bool:
    """An encoder (or embeddings) imported from elsewhere: what it learnt from is unknown."""
    return "imported" in (version.meta.get("training") or {})


def reference_path(version: Any) -> Path:
    """Where an encoder version (a ``ModelVersion``) keeps its OOD reference."""
    return Path(version.path) / ood.REFERENCE_FILE


def training_survey(version: Any) -> str:
    """The survey an encoder version's reference is drawn from: the survey it was trained on
    (for an imported encoder, the survey its reference was built from at import; its own
    survey when not recorded)."""
    training = version.meta.get("training") or {}
    imported = training.get("ood_reference") or {}
    return str(imported.get("survey") or training.get("survey") or version.meta.get("survey"))


def stratified_rows(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``min(n, size)`` sorted rows of an ``n``-row catalog, one drawn at random from each of
    as many equal runs of the catalog order, so that every part of the survey (its files, sky
    regions, ingest batches) is in the sample in proportion."""
    size = min(int(n), int(size))
    if size <= 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.linspace(0, n, size + 1)
    lo, hi = np.ceil(edges[:-1]).astype(np.int64), np.ceil(edges[1:]).astype(np.int64)
    hi = np.maximum(hi, lo + 1)
    rng = np.random.default_rng(seed)
    return np.minimum(lo + (rng.random(size) * (hi - lo)).astype(np.int64), n - 1)


def survey_reference(
    model: Any, survey: Any, *, role: str, max_rows: int = IMPORT_SAMPLE, batch_size: int = 256
) -> tuple[ood.OODReference, dict[str, Any]]:
    """The OOD reference of an imported encoder (``model``, whose training data is unknown)
    from a stratified sample (:func:`stratified_rows`) of ``survey`` (a ``Survey``) embedded
    with it, and the record the model's metadata keeps of it. ``role`` says why this survey
    (the survey it was imported for, or the one the user named). Raises ``UserError`` when the
    survey cannot be read by the model or is too small."""
    from backend.errors import UserError
    from models import embed

    rows = stratified_rows(len(survey), max_rows)
    if len(rows) < 2:
        raise UserError(
            f"survey {survey.name} has {len(survey)} object(s): an OOD reference needs 2 or more"
        )
    try:
        vectors = np.concatenate([
            embed(model.eval(), survey.cutouts(rows[lo : lo + batch_size]), bands=survey.bands,
                  device="cpu", batch_size=batch_size)
            for lo in range(0, len(rows), batch_size)
        ])  # fmt: skip
    except Exception as exc:  # whatever the foreign network raises on this survey's cutouts
        text = (str(exc).strip().splitlines() or [""])[0][:300]
        raise UserError(
            f"survey {survey.name} ({role}): the encoder cannot embed its cutouts for an OOD "
            f"reference: {type(exc).__name__}: {text}"
        ) from None
    source = (
        f"{survey.name} itself ({role}): stratified sample of {len(rows)} of {len(survey)} "
        "objects; scores measure distance to that survey's bulk"
    )
    reference = ood.build_reference(vectors, source=source, max_rows=len(rows))
    reference = ood.OODReference(
        reference.vectors, reference.quantiles, reference.k, source, rows[reference.rows]
    )
    record = {
        "survey": survey.name, "role": role, "objects": len(rows), "of": len(survey),
        "sample": "stratified over the catalog order", "file": ood.REFERENCE_FILE,
        "meaning": f"what the encoder learnt from is unknown: the reference is {survey.name} "
        "itself, so OOD scores measure distance to that survey's bulk",
    }  # fmt: skip
    return reference, record


def save_reference_for(version: Any, embeddings: np.ndarray | None = None) -> ood.OODReference:
    """Make and store ``version``'s reference from its training survey's embeddings (``embeddings``
    when given, else that survey's embeddings product of this version)."""
    survey = training_survey(version)
    if embeddings is None:
        if not has_embeddings(survey, "encoder", version.version):
            raise ProductError(
                f"encoder {version.version} has no OOD reference yet and its training survey "
                f"{survey} has no embeddings of it: run `python -m backend embed --survey "
                f"{survey} --model {version.version}` first"
            )
        embeddings = open_embeddings(survey, "encoder", version.version)
    reference = ood.build_reference(
        embeddings, source=f"{survey} embeddings, encoder {version.version}"
    )
    ood.save_reference(reference, reference_path(version))
    return reference


def general_parent(version: Any) -> str | None:
    """The shipped general encoder a version is, unchanged (``train encoder --steps 0``), else
    None: such a version learnt from the general encoder's corpus, not from its survey."""
    training = version.meta.get("training") or {}
    parent = str(version.meta.get("parent") or "")
    if parent.startswith("general:") and (training.get("budget") or {}).get("steps") == 0:
        return parent.partition(":")[2]
    return None


def reference_for(version: Any) -> ood.OODReference:
    """``version``'s stored reference: made the first time from its training embeddings, or
    copied from the general encoder's (its corpus) when the version is that encoder as shipped."""
    path = reference_path(version)
    if path.is_file():
        return ood.load_reference(path)
    general = general_parent(version)
    if general:
        from backend.modelling.general import general_encoder_dir

        shipped = general_encoder_dir(general) / ood.REFERENCE_FILE
        if shipped.is_file():
            reference = ood.load_reference(shipped)
            ood.save_reference(reference, path)
            return reference
    return save_reference_for(version)


def reference_problem(encoder: str, survey: str) -> str | None:
    """Why encoder ``encoder`` has no OOD reference for ``survey``'s ``ood`` product and none
    can be made (one line), or None when it has one or one will be made as
    :func:`reference_for` does (from ``survey``'s own embeddings when it is the training
    survey, else from the training survey's embeddings, which must exist)."""
    from backend.registry import ModelRegistry

    version = ModelRegistry().get("encoder", encoder)
    if reference_path(version).is_file():
        return None
    general = general_parent(version)
    if general:
        from backend.modelling.general import general_encoder_dir

        if (general_encoder_dir(general) / ood.REFERENCE_FILE).is_file():
            return None
    source = training_survey(version)
    if source == survey or has_embeddings(source, "encoder", encoder):
        return None
    return (
        f"encoder {encoder} has no OOD reference and its training survey {source} has no "
        f"embeddings of it (run `python -m backend embed --survey {source} --model {encoder}` "
        "if that survey is still here)"
    )


def reference_after_embedding(survey: str, encoder: str) -> None:
    """Store an encoder's reference once its training survey is embedded (the pipeline calls
    this after each embeddings product; cheap when the reference exists or does not apply)."""
    from backend.registry import ModelRegistry

    version = ModelRegistry().get("encoder", encoder)
    if reference_path(version).is_file() or general_parent(version):
        return
    if training_survey(version) == survey and version.config.get("kind") != "imported_embeddings":
        save_reference_for(version)


def make_ood(survey: str, encoder: str) -> dict[str, Any]:
    """Score every object of ``survey`` against encoder ``encoder``'s reference and publish
    ``ood.parquet`` + ``ood.json`` (then its lineage record); returns the summary."""
    from backend.pipeline.build import record
    from backend.pipeline.kinds import PRODUCTS, Target
    from backend.registry import ModelRegistry
    from backend.survey.store import Survey

    started = time.perf_counter()
    version = ModelRegistry().get("encoder", encoder)
    reference = reference_for(version)
    own = survey == training_survey(version)  # its objects are not their own neighbours
    scores = ood.score(reference, open_embeddings(survey, "encoder", encoder), training=own)
    ids = Survey.open(survey).catalog["object_id"].to_numpy()
    summary = {
        "survey": survey, "encoder": encoder, "reference": reference.source, "k": reference.k,
        **ood.summarise(scores, reference),
    }  # fmt: skip
    if is_imported(version) and not general_parent(version):
        # its training data is unknown: the reference is a survey's own embeddings
        summary["note"] = (
            f"imported encoder: what it learnt from is unknown; the reference is "
            f"{training_survey(version)} itself, so scores measure distance to that survey's bulk"
        )
        if own:
            summary["verdict"] = NO_REFERENCE
    target = Target("ood", survey, "encoder", encoder)
    with publish(target.directory, PRODUCTS["ood"].files) as staging:
        pd.DataFrame({"object_id": ids, "ood_score": scores}).to_parquet(
            staging / OOD_FILE, row_group_size=ROW_GROUP
        )
        (staging / OOD_META_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    record(target, None, time.perf_counter() - started)
    return summary


def read_ood(survey: str, encoder: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """(per-object scores, summary) of the product, or None when it was not made."""
    from backend.pipeline.storage import product_dir

    folder = product_dir(survey, "encoder", encoder)
    if not (folder / OOD_FILE).is_file() or not (folder / OOD_META_FILE).is_file():
        return None
    return pd.read_parquet(folder / OOD_FILE), json.loads((folder / OOD_META_FILE).read_text())


def corpus_sample(catalog: pd.DataFrame, card: dict[str, Any], max_rows: int) -> np.ndarray:
    """Rows of a (re-rendered, possibly smaller) corpus in the mix of presets the card says the
    encoder was trained on, at most ``max_rows``; every row when the card has no mix."""
    mix = {r["preset"]: int(r["n"]) for r in (card.get("corpus") or {}).get("by_source", [])}
    have = catalog.groupby("preset").size()
    mix = {p: n for p, n in mix.items() if p in have.index}
    rng = np.random.default_rng(0)
    if not mix:
        n = len(catalog)
        return np.sort(rng.choice(n, min(n, max_rows), replace=False))
    scale = min(max_rows / sum(mix.values()), *(have[p] / n for p, n in mix.items()))
    rows = [
        rng.choice(np.nonzero(catalog["preset"].to_numpy() == p)[0], int(n * scale), replace=False)
        for p, n in mix.items()
    ]
    return np.sort(np.concatenate(rows))


def general_reference(corpus: Path, name: str, *, max_rows: int = ood.MAX_ROWS) -> Path:
    """Embed a sample of a pretraining corpus (``pretrain corpus``) with the shipped general
    encoder ``name`` and store its OOD reference beside its weights; returns the file."""
    import torch

    from backend.modelling.general import general_card, general_encoder_dir, load_general_config
    from backend.pretrain.corpus import load_corpus
    from models import build_model

    images, catalog = load_corpus(corpus)
    rows = corpus_sample(catalog, general_card(name), max_rows)
    model = build_model(load_general_config(name))
    state = torch.load(general_encoder_dir(name) / "weights.pt", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    with torch.inference_mode():
        x = np.concatenate([
            model.embed(torch.from_numpy(images[rows[lo : lo + 256]])).numpy()
            for lo in range(0, len(rows), 256)
        ])  # fmt: skip
    sources = ", ".join(f"{k} {v}" for k, v in catalog.iloc[rows].groupby("preset").size().items())
    reference = ood.build_reference(
        x, source=f"{name} corpus sample ({len(rows)} of {len(images)} images: {sources})"
    )
    path = general_encoder_dir(name) / ood.REFERENCE_FILE
    ood.save_reference(reference, path)
    return path
