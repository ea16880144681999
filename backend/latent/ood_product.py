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


def reference_path(version: Any) -> Path:
    """Where an encoder version (a ``ModelVersion``) keeps its OOD reference."""
    return Path(version.path) / ood.REFERENCE_FILE


def training_survey(version: Any) -> str:
    """The survey an encoder version was trained on (its own survey when not recorded)."""
    return str((version.meta.get("training") or {}).get("survey") or version.meta.get("survey"))


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


def reference_for(version: Any) -> ood.OODReference:
    """``version``'s stored reference, made from its training embeddings the first time."""
    path = reference_path(version)
    return ood.load_reference(path) if path.is_file() else save_reference_for(version)


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
    target = Target("ood", survey, "encoder", encoder)
    with publish(target.directory, PRODUCTS["ood"].files) as staging:
        pd.DataFrame({"object_id": ids, "ood_score": scores}).to_parquet(staging / OOD_FILE)
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
