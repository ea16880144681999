"""A survey's labelled anomalies: the labelled objects of the classes its label schema declares
anomalies (``anomalies: [merger, dont_know]``), with the rows held out from any choice.

Labels are every label source the survey's active classifier learnt from (its catalog columns)
plus the label store's consensus (:func:`backend.active.loop.merged_labels`); the held-out rows
are the ``val`` part of the task's stored validation split (:mod:`backend.validation`), which
also assigns newly labelled objects first, so an object never steers the choice of the anomaly
combination and is later judged in validation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.survey import Survey


@dataclass(frozen=True)
class LabelledAnomalies:
    """Per object of a survey: labelled as a declared anomaly class; held out (``val``)."""

    task: str
    classes: tuple[str, ...]  # the schema's anomaly classes
    positive: np.ndarray  # (N,) bool
    held_out: np.ndarray  # (N,) bool
    sources: str  # the label sources read, e.g. "label_store+catalog:gz1_label"

    def stamp(self) -> str:
        """A hash of what the choice reads: the classes, the positive and held-out rows."""
        digest = hashlib.sha256(f"{self.task}|{','.join(self.classes)}|".encode())
        digest.update(np.flatnonzero(self.positive).astype(np.int64).tobytes())
        digest.update(b"|")
        digest.update(np.flatnonzero(self.held_out).astype(np.int64).tobytes())
        return digest.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "sources": self.sources,
            "n_positive": int(self.positive.sum()),
            "n_positive_held_out": int((self.positive & self.held_out).sum()),
            "n_held_out": int(self.held_out.sum()),
        }


def labelled_anomalies(survey: Survey, persist: bool = True) -> LabelledAnomalies | None:
    """The survey's labelled anomalies, or None when its label schema declares no anomaly
    class. ``persist``: store the split's new assignments (False: only compute them, as the
    planner does to judge whether the scores are current)."""
    from backend.active.loop import catalog_sources, merged_labels
    from backend.labels.schema import load_schema
    from backend.labels.store import LabelStore
    from backend.registry import ModelRegistry
    from backend.validation import validation_split

    schema = load_schema(survey.name)
    if not schema.anomalies:
        return None
    columns = catalog_sources(ModelRegistry().active(survey.name, "classifier"))
    labels, classes, snapshot = merged_labels(survey.name, LabelStore(), schema.task, columns)
    wanted = [classes.index(c) for c in schema.anomalies if c in classes]
    ids = survey.catalog["object_id"].to_numpy()
    split = validation_split(survey.name, schema.task, ids, labels, persist=persist)
    held_out = np.zeros(len(survey), dtype=bool)
    held_out[split.val_rows] = True
    return LabelledAnomalies(
        task=schema.task,
        classes=tuple(schema.anomalies),
        positive=np.isin(labels, wanted) & (labels >= 0),
        held_out=held_out,
        sources=str(snapshot.get("source", "")),
    )
