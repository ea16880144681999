"""Everything one survey's explanations read, loaded once: the active encoder, classifier and
autoencoder, the embeddings, the anomaly scores, the classifier's labels and the masks of
injected anomalies (each optional but the encoder and its embeddings)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backend.errors import UserError
from backend.latent.source import ANOMALY_FILE, latent_dir
from backend.modelling.common import load_model, resolve_version
from backend.pipeline.storage import open_embeddings
from backend.registry import ModelRegistry
from backend.simulate.masks import AnomalyMasks, read_masks
from backend.survey import Survey

log = logging.getLogger(__name__)


@dataclass
class ExplainContext:
    """Models and products of one survey, ready for :func:`backend.explain.explain_object`."""

    survey: Survey
    encoder_version: str
    encoder: Any
    embeddings: np.ndarray
    classifier: Any | None = None
    classifier_version: str | None = None
    autoencoder: Any | None = None
    autoencoder_version: str | None = None
    anomaly: pd.DataFrame | None = None  # rows in survey order, one column per scorer
    labels: pd.Series | None = None  # class per survey row, "" where unlabelled
    masks: AnomalyMasks | None = None
    _unit: np.ndarray | None = None

    @property
    def unit(self) -> np.ndarray:
        """Embeddings scaled to unit length (cosine neighbours), computed once."""
        if self._unit is None:
            emb = np.asarray(self.embeddings, dtype=np.float32)
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            self._unit = emb / np.maximum(norms, 1e-12)
        return self._unit

    def row_of(self, object_id: str) -> int:
        """The survey row of ``object_id``; a clear error for an unknown id."""
        try:
            return self.survey.index_of(str(object_id))
        except (KeyError, LookupError, UserError) as exc:
            raise UserError(
                f"unknown object id {object_id!r} in survey {self.survey.name!r}"
            ) from exc


def _optional(registry: ModelRegistry, survey: str, kind: str) -> Any | None:
    version = registry.active(survey, kind) or registry.latest(kind, survey)
    return version


def _anomaly_table(survey: Survey, encoder: str) -> pd.DataFrame | None:
    path = latent_dir(survey.name, encoder) / ANOMALY_FILE
    if not path.is_file():
        return None
    table = pd.read_parquet(path)
    table = table.set_index("object_id").reindex(survey.catalog["object_id"])
    return table.reset_index(drop=True)


def _labels(survey: Survey, classifier_meta: dict[str, Any]) -> pd.Series | None:
    """The classifier's labels: its catalog column, else the label store's consensus."""
    source = str(classifier_meta.get("training", {}).get("labels", {}).get("source", ""))
    catalog = survey.catalog
    if source.startswith("catalog:") and source[8:] in catalog:
        return catalog[source[8:]].fillna("").astype(str)
    try:
        from backend.labels.store import LabelStore

        consensus = LabelStore().consensus(survey.name)
    except Exception as exc:  # no database yet: exemplars are then left out
        log.info("no labels for %s: %s", survey.name, exc)
        return None
    by_id = dict(zip(consensus["object_id"], consensus["value"].astype(str), strict=True))
    return catalog["object_id"].map(by_id).fillna("").astype(str)


class NotExplainableError(UserError):
    """The survey's encoder has no network of LatentSky's to explain with."""


def _check_explainable(enc: Any) -> None:
    """Refuse, in one line, an encoder whose kind no model of LatentSky's builds (vectors
    imported with no network: ``imported``, ``imported_embeddings``)."""
    from models.factory import FOREIGN_KINDS, MODEL_CLASSES

    kind = str(enc.config.get("kind", ""))
    if kind == "imported_embeddings" or kind not in (*MODEL_CLASSES, *FOREIGN_KINDS):
        raise NotExplainableError(
            f"explanations need a LatentSky encoder; encoder {enc.version} is of kind "
            f"{kind!r} (embeddings made elsewhere)"
        )


def load_context(survey_name: str) -> ExplainContext:
    """Load the survey's active models and products (CPU, eval mode)."""
    survey = Survey.open(survey_name)
    registry = ModelRegistry()
    enc = resolve_version(registry, survey_name, "encoder")
    _check_explainable(enc)
    ctx = ExplainContext(
        survey=survey,
        encoder_version=enc.version,
        encoder=load_model(enc),
        embeddings=open_embeddings(survey_name, "encoder", enc.version),
        anomaly=_anomaly_table(survey, enc.version),
        masks=read_masks(survey.path),
    )
    clf = _optional(registry, survey_name, "classifier")
    if clf is not None and clf.config.get("embedding_source", {}).get("version") == enc.version:
        ctx.classifier, ctx.classifier_version = load_model(clf), clf.version
        ctx.labels = _labels(survey, clf.meta)
    ae = _optional(registry, survey_name, "autoencoder")
    if ae is not None:
        ctx.autoencoder, ctx.autoencoder_version = load_model(ae), ae.version
    return ctx


_cache: dict[tuple[str, str], ExplainContext] = {}
_lock = threading.Lock()


def cached_context(survey_name: str) -> ExplainContext:
    """:func:`load_context`, kept per (survey, active versions) for the web server."""
    active = ModelRegistry().active_versions(survey_name)
    key = (survey_name, repr(sorted(active.items())))
    with _lock:
        if key not in _cache:
            for old in [k for k in _cache if k[0] == survey_name]:
                del _cache[old]
            _cache[key] = load_context(survey_name)
        return _cache[key]
