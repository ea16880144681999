"""A fixed, stratified validation set per (survey, task): stored, kept out of training, grown.

Every labelled object of a task is assigned once, to ``val`` or ``train``, and keeps that
assignment for good (also when its label changes or a new label source adds it again), so no
model is ever trained on an object another model is judged on. New labelled objects are assigned
per class in the order of a stable hash of their id, so each class keeps about
:data:`VALIDATION_FRACTION` of its objects in validation (at least one once a class has two).

Stored as ``$LATENTSKY_HOME/validation/<survey>/<task>.parquet`` (``object_id``, ``split``,
``assigned``: the time of the round that assigned it), rewritten atomically under a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from backend.atomic import atomic_write
from backend.config import get_settings
from backend.survey.meta import validate_survey_name

VALIDATION_FRACTION = 0.2
TASK_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ValidationSplit:
    """Rows (indices into the survey) of the labelled objects in each part."""

    val_rows: np.ndarray
    train_rows: np.ndarray
    path: Path
    n_new: int  # objects assigned by this call

    def to_dict(self) -> dict[str, int | str]:
        return {
            "path": str(self.path),
            "n_val": len(self.val_rows),
            "n_train": len(self.train_rows),
            "n_new": self.n_new,
        }


def validation_path(survey: str, task: str) -> Path:
    if not TASK_PATTERN.fullmatch(task):
        raise ValueError(f"task name {task!r}: use letters, digits, '_', '.', '-' (max 64)")
    return get_settings().home / "validation" / validate_survey_name(survey) / f"{task}.parquet"


def stored_assignments(survey: str, task: str) -> pd.DataFrame:
    """The stored assignments (``object_id``, ``split``, ``assigned``); empty when none."""
    path = validation_path(survey, task)
    if not path.is_file():
        return pd.DataFrame({"object_id": [], "split": [], "assigned": []}, dtype=str)
    return pd.read_parquet(path).astype({"object_id": str, "split": str})


def _hash_order(survey: str, task: str, ids: np.ndarray) -> np.ndarray:
    keys = [
        int.from_bytes(hashlib.blake2b(f"{survey}/{task}/{i}".encode(), digest_size=8).digest())
        for i in ids
    ]
    return np.argsort(np.array(keys, dtype=np.uint64), kind="stable")


def _assign_new(
    survey: str, task: str, ids: np.ndarray, labels: np.ndarray, known: pd.Series, fraction: float
) -> pd.DataFrame:
    """Split the labelled objects without an assignment, class by class."""
    rows = []
    new = ~pd.Index(ids).isin(known.index)
    for cls in np.unique(labels):
        members = ids[labels == cls]
        old = known.reindex(members).dropna()
        n_total = len(members)
        target = round(fraction * n_total)
        if n_total >= 2:
            target = max(target, 1)
        missing = max(0, target - int((old == "val").sum()))
        fresh = ids[(labels == cls) & new]
        fresh = fresh[_hash_order(survey, task, fresh)]
        rows += [(i, "val" if k < missing else "train") for k, i in enumerate(fresh)]
    return pd.DataFrame(rows, columns=["object_id", "split"])


def validation_split(
    survey: str,
    task: str,
    object_ids: np.ndarray,
    labels: np.ndarray,
    *,
    fraction: float = VALIDATION_FRACTION,
    persist: bool = True,
) -> ValidationSplit:
    """Assign every labelled object (``labels >= 0``) of ``task`` and return both parts' rows.

    ``object_ids`` are the survey's ids in row order, ``labels`` one class index per row (-1
    unlabelled). Objects assigned before keep their part; new ones are added and (``persist``)
    stored before this returns.
    """
    object_ids = np.asarray(object_ids).astype(str)
    labels = np.asarray(labels)
    if object_ids.shape != labels.shape:
        raise ValueError(f"{len(object_ids)} object ids but {len(labels)} labels")
    path = validation_path(survey, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled = labels >= 0
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = stored_assignments(survey, task)
        known = pd.Series(stored["split"].to_numpy(), index=stored["object_id"].to_numpy())
        fresh = _assign_new(survey, task, object_ids[labelled], labels[labelled], known, fraction)
        if len(fresh) and persist:
            fresh["assigned"] = datetime.now(UTC).isoformat(timespec="seconds")
            table = pd.concat([stored, fresh], ignore_index=True)
            atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))
        known = pd.concat([known, pd.Series(fresh["split"].to_numpy(), index=fresh["object_id"])])
    split = pd.Series(object_ids).map(known).to_numpy()
    return ValidationSplit(
        val_rows=np.flatnonzero(labelled & (split == "val")),
        train_rows=np.flatnonzero(labelled & (split == "train")),
        path=path,
        n_new=len(fresh),
    )
