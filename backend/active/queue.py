"""The labelling queue of one user on one survey (what the Label view shows next).

A queue holds a batch of object indices from :func:`next_batch` (scores of the active
classifier's predictions, diversified; a cold start when there is no classifier or no label).
It never offers an object that is labelled (by anyone, by default) or that this queue skipped,
and it rebuilds its batch when the batch runs dry or a new classifier version becomes active.
Everything it reads is on disk or in the label store, so a queue can be rebuilt at any time.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from backend.active.acquisition import DEFAULT_STRATEGY, next_batch
from backend.labels.store import LabelStore
from backend.pipeline.kinds import Target
from backend.pipeline.lineage import stamp
from backend.products import ProductError, open_embeddings, read_predictions
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyError
from backend.survey.ids import IdLookup, id_lookup


class LabelQueue:
    """Next objects to label for ``user`` on ``survey`` (thread-safe; one per UI session)."""

    def __init__(
        self,
        survey: str,
        user: str,
        *,
        strategy: str = DEFAULT_STRATEGY,
        batch_size: int = 50,
        task: str = "class",
        only_mine: bool = False,
        store: LabelStore | None = None,
        registry: ModelRegistry | None = None,
        seed: int = 0,
    ) -> None:
        self.survey = Survey.open(survey)
        self.user, self.task, self.strategy = user, task, strategy
        self.batch_size, self.only_mine, self.seed = int(batch_size), only_mine, seed
        self.store = store or LabelStore()
        self.registry = registry or ModelRegistry()
        self._lock = threading.Lock()
        self._batch: list[int] = []
        self._skipped: set[int] = set()
        self._labelled = np.zeros(len(self.survey), bool)
        self._label_count = -1
        self._version: str | None = None
        self._refreshes = 0
        self._read: tuple[tuple[str, str | None], pd.DataFrame | None] | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def classifier_version(self) -> str | None:
        """The classifier version the current batch was ranked with (None: cold start)."""
        return self._version

    def _active_classifier(self) -> str | None:
        return self.registry.active_versions(self.survey.name).get("classifier")

    def _sync_labels(self) -> None:
        user = self.user if self.only_mine else None
        count = self.store.count(self.survey.name, task=self.task, user=user)
        if count == self._label_count:
            return
        ids = self.store.current(self.survey.name, task=self.task, user=user)["object_id"]
        labelled = np.zeros(len(self.survey), bool)
        rows = self._ids().rows_of(ids.astype(str).unique())
        labelled[rows[rows >= 0]] = True  # ids of objects no longer in the survey are ignored
        self._labelled, self._label_count = labelled, count

    def _ids(self) -> IdLookup:
        """The survey's id look-ups, shared by the process (never the catalog in memory)."""
        return id_lookup(self.survey.path / "catalog.parquet")

    def _row_of(self, object_id: str) -> int:
        row = int(self._ids().rows_of([object_id])[0])
        if row < 0:
            raise SurveyError(f"survey {self.survey.name}: unknown object id {object_id!r}")
        return row

    def _predictions(self, version: str) -> pd.DataFrame | None:
        """The classifier's predictions, read again only when the product changed (a refresh
        of a survey of 10^8 objects must not re-read its table each time)."""
        key = (version, stamp(Target("predictions", self.survey.name, "classifier", version)))
        if self._read is None or self._read[0] != key:
            try:
                table = read_predictions(self.survey.name, "classifier", version)
            except ProductError:
                table = None  # not predicted yet: rank as a cold start
            self._read = (key, table)
        return self._read[1]

    def _inputs(self, version: str | None) -> tuple[np.ndarray, pd.DataFrame | None]:
        predictions, encoder = None, None
        if version is not None:
            mv = self.registry.get("classifier", version)
            encoder = mv.config.get("embedding_source", {}).get("version")
            predictions = self._predictions(version)
        encoder = encoder or self.registry.active_versions(self.survey.name).get("encoder")
        if encoder is None:
            raise ProductError(f"survey {self.survey.name} has no encoder embeddings to rank")
        return open_embeddings(self.survey.name, "encoder", encoder), predictions

    def refresh(self) -> None:
        """Re-rank now with the active classifier and the current labels."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        self._sync_labels()
        version = self._active_classifier()
        embeddings, predictions = self._inputs(version)
        excluded = self._labelled.copy()
        excluded[list(self._skipped)] = True
        seed = self.seed + self._refreshes
        batch = next_batch(embeddings, predictions, excluded, self.strategy, self.batch_size, seed)
        self._batch, self._version = [int(i) for i in batch], version
        self._refreshes += 1

    # -- use -----------------------------------------------------------------------------------
    def next(self, n: int = 1) -> list[str]:
        """Object ids of the next ``n`` objects to label (fewer when nothing is left)."""
        with self._lock:
            if self._active_classifier() != self._version:
                self._batch = []  # a new model: its ranking replaces the old batch
            self._sync_labels()
            out: list[int] = []
            for attempt in range(2):
                self._batch = [
                    i for i in self._batch if not self._labelled[i] and i not in self._skipped
                ]
                if len(self._batch) >= n or attempt == 1:
                    break
                self._refresh()
            out = self._batch[:n]
            return [str(i) for i in self._ids().ids_of(out)]

    def skip(self, object_id: str) -> None:
        """Never offer ``object_id`` again in this queue."""
        with self._lock:
            self._skipped.add(self._row_of(object_id))

    def mark_labelled(self, object_id: str) -> None:
        """Drop ``object_id`` now (the store will say so too at the next sync)."""
        with self._lock:
            self._labelled[self._row_of(object_id)] = True
