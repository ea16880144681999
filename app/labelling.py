"""Label-store glue for the views: one store per process, labels as a map column, and the
labelling queue (most uncertain first while there is no active-learning acquisition yet)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.config import get_settings
from backend.labels import LabelSchema, LabelStore, load_schema

log = logging.getLogger(__name__)
_stores: dict[str, LabelStore] = {}
_store_lock = threading.Lock()


def label_store() -> LabelStore:
    """The process-wide :class:`LabelStore` (``DATABASE_URL``, else SQLite in the data root)."""
    url = get_settings().database_url
    with _store_lock:
        if url not in _stores:
            _stores[url] = LabelStore(url)
        return _stores[url]


def schema_for(survey: str) -> LabelSchema:
    return load_schema(survey)


def classifier_classes(survey: str) -> list[str]:
    """The classes of the survey's active classifier, in its order ([] without one)."""
    from backend.registry import ModelRegistry, RegistryError

    try:
        version = ModelRegistry().active(survey, "classifier")
        classes = version.config.get("classes", []) if version is not None else []
    except (RegistryError, OSError, ValueError):  # no readable classifier: nothing to compare
        return []
    return [str(c) for c in classes]


def missing_classes(schema: LabelSchema, classes: list[str]) -> list[str]:
    """The classifier's ``classes`` that ``schema`` lacks: labels given with the schema can
    never teach or correct them (a survey prepared on a catalog column keeps the default
    classes until someone saves its own)."""
    return [c for c in classes if c not in schema.by_name]


def save_and_load_schema(survey: str, names: list[str]) -> LabelSchema:
    """Save ``names`` as the survey's classes (validated; atomically) and read them back."""
    from backend.labels.schema import make_schema, save_schema

    save_schema(survey, make_schema(names))
    return load_schema(survey)


def consensus_column(survey: str, object_ids: pd.Series, missing: str) -> np.ndarray:
    """Per row: the majority human label (all users), else ``missing``."""
    out = np.full(len(object_ids), missing, dtype=object)
    votes = label_store().consensus(survey)
    if len(votes):
        rows = pd.Index(object_ids.astype(str)).get_indexer(votes["object_id"].astype(str))
        ok = rows >= 0
        out[rows[ok]] = votes["value"].to_numpy(dtype=object)[ok]
    return out


def object_labels(survey: str, object_id: str) -> pd.DataFrame:
    """Current labels of one object (one row per user)."""
    current = label_store().current(survey)
    return current[current["object_id"] == str(object_id)]


def queue_order(table: pd.DataFrame, seed: int = 0) -> tuple[np.ndarray, str]:
    """(row order, why): highest classifier entropy first, else a seeded shuffle."""
    if "entropy" in table and np.isfinite(table["entropy"].to_numpy(float)).any():
        score = np.nan_to_num(table["entropy"].to_numpy(float), nan=-np.inf)
        return np.argsort(-score, kind="stable"), "most uncertain first (classifier entropy)"
    order = np.random.default_rng(seed).permutation(len(table))
    return order, "random order (no classifier predictions yet)"


def rows_of(ids: pd.Index, object_ids: set[str]) -> set[int]:
    """Row numbers of the known ``object_ids`` in the id index."""
    if not object_ids:
        return set()
    rows = ids.get_indexer(list(object_ids))
    return set(rows[rows >= 0].tolist())


@dataclass
class LabelQueue:
    """Objects to label, in order: highest classifier entropy first (else a seeded shuffle),
    skipping objects that already have a label and those skipped in this session."""

    order: np.ndarray  # row indices, best first
    reason: str  # how the order was chosen, for the page
    done: set[int] = field(default_factory=set)
    pos: int = 0

    @classmethod
    def build(cls, table: pd.DataFrame, labelled_ids: set[str], seed: int = 0) -> LabelQueue:
        order, reason = queue_order(table, seed)
        ids = pd.Index(table["object_id"].astype(str))
        return cls(order=order, reason=reason, done=rows_of(ids, labelled_ids))

    def current(self) -> int | None:
        """Row index of the object to label now (None when the queue is empty)."""
        while self.pos < len(self.order) and int(self.order[self.pos]) in self.done:
            self.pos += 1
        return int(self.order[self.pos]) if self.pos < len(self.order) else None

    def upcoming(self, k: int) -> list[int]:
        """The ``k`` objects after the current one."""
        out, p = [], self.pos + 1
        while len(out) < k and p < len(self.order):
            i = int(self.order[p])
            if i not in self.done:
                out.append(i)
            p += 1
        return out

    def finish(self, index: int, skipped: bool = False) -> None:
        """Mark ``index`` labelled (or skipped)."""
        self.done.add(int(index))

    def refill(self) -> None:
        """Nothing to fetch: the whole order is known."""

    def reopen(self, index: int) -> None:
        """Put ``index`` back in front (after an undo)."""
        self.done.discard(int(index))
        order = self.order
        where = np.flatnonzero(order == index)
        if len(where):
            order = np.delete(order, where[0])
            if where[0] < self.pos:
                self.pos -= 1
        self.order = np.insert(order, self.pos, index)

    @property
    def remaining(self) -> int:
        return len(self.order) - len(self.done)


class ActiveQueue:
    """The backend's active-learning queue (:class:`backend.active.queue.LabelQueue`: its
    acquisition on the active classifier, diversified; a cold start without labels) behind the
    same interface
    as :class:`LabelQueue`. A local look-ahead keeps the next objects known, so showing the next
    one never waits for a re-ranking; :meth:`refill` (background) tops it up."""

    LOOK_AHEAD = 12

    def __init__(self, survey: str, user: str, ids: pd.Index, strategy: str | None = None) -> None:
        from backend.active.acquisition import DEFAULT_STRATEGY
        from backend.active.queue import LabelQueue as BackendQueue

        self.backend = BackendQueue(survey, user, strategy=strategy or DEFAULT_STRATEGY)
        self.strategy = str(self.backend.strategy)
        self.ids = ids
        self.done: set[int] = set()
        self.front: list[int] = []  # reopened objects (undo, "label it"), shown first
        self.ahead: list[int] = []
        self._lock = threading.Lock()
        self.refill()

    @property
    def reason(self) -> str:
        version = self.backend.classifier_version
        if version is None:
            return "active learning, cold start: one object per k-means cluster (no labels yet)"
        return f"active learning: {self.strategy.upper()} of classifier {version}, diversified"

    def refill(self) -> None:
        """Ask the backend for the next objects (re-ranks when labels or the model changed)."""
        rows = self.ids.get_indexer(self.backend.next(self.LOOK_AHEAD))
        with self._lock:
            self.ahead = [int(r) for r in rows if r >= 0 and int(r) not in self.done]

    def _line(self) -> list[int]:
        return [i for i in self.front + self.ahead if i not in self.done]

    def current(self) -> int | None:
        line = self._line()
        if not line:
            self.refill()
            line = self._line()
        return line[0] if line else None

    def upcoming(self, k: int) -> list[int]:
        return self._line()[1 : k + 1]

    def finish(self, index: int, skipped: bool = False) -> None:
        with self._lock:
            self.done.add(int(index))
            self.front = [i for i in self.front if i != index]
        object_id = str(self.ids[int(index)])
        if skipped:
            self.backend.skip(object_id)
        else:
            self.backend.mark_labelled(object_id)

    def reopen(self, index: int) -> None:
        with self._lock:
            self.done.discard(int(index))
            self.front.insert(0, int(index))

    @property
    def remaining(self) -> int:
        return len(self.ids) - len(self.done)


def make_queue(
    survey: str,
    user: str,
    table: pd.DataFrame,
    ids: pd.Index,
    labelled: set[str],
    strategy: str | None = None,
) -> ActiveQueue | LabelQueue:
    """The active-learning queue (acquisition ``strategy``, default the backend's) when the
    survey has embeddings, else :class:`LabelQueue`."""
    from backend.products import ProductError

    try:
        return ActiveQueue(survey, user, ids, strategy)
    except (ImportError, ProductError, ValueError) as exc:
        log.info("active-learning queue unavailable for %s (%s): simple queue", survey, exc)
    order, reason = queue_order(table)
    return LabelQueue(order=order, reason=reason, done=rows_of(ids, labelled))
