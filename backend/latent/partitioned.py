"""Per-partition tasks of the latent steps, run by :mod:`backend.pipeline.execution`.

A task reads its rows from a :class:`RowSource`: pickled (to go to a Dask worker), a
memory-mapped ``.npy`` product travels as its path and the worker maps the file itself (the
workers see the same data root); an in-memory array travels whole, once per worker. FAISS
indexes travel serialised (:class:`PicklableIndex`). Each task normalises its own rows, as
:func:`backend.latent.vectors.unit_rows` does row by row, so a partition's result is the same
whoever computes it, and the same as the single-process loop it replaces.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from backend.latent.vectors import as_matrix, normalize


class RowSource:
    """Rows ``[lo, hi)`` of an (N, D) matrix, readable in this process or on a worker."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` as float32."""
        return np.asarray(self.array[lo:hi], dtype=np.float32)

    def unit(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` normalised to unit length."""
        return normalize(self.array[lo:hi])

    def __getstate__(self) -> dict[str, Any]:
        a = self.array
        if isinstance(a, np.memmap) and isinstance(a.base, mmap.mmap) and a.filename:
            return {"path": a.filename, "offset": a.offset, "shape": a.shape, "dtype": a.dtype.str}
        return {"array": np.asarray(a)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "array" in state:
            self.array = state["array"]
            return
        self.array = np.memmap(
            state["path"], mode="r", dtype=np.dtype(state["dtype"]),
            shape=tuple(state["shape"]), offset=state["offset"],
        )  # fmt: skip


class PicklableIndex:
    """A FAISS index that pickles as its serialised bytes."""

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    def __getstate__(self) -> dict[str, Any]:
        return {"bytes": faiss.serialize_index(self.index)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.index = faiss.deserialize_index(state["bytes"])


@dataclass
class KnnPartition:
    """``k`` nearest rows (cosine similarities, ids) of rows ``[lo, hi)`` in the index."""

    index: Any  # backend.latent.search.SimilarityIndex (its faiss index pickled as bytes)
    source: RowSource
    k: int
    ef_search: int | None

    def __call__(self, rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search_unit(self.source.unit(*rows), self.k, ef_search=self.ef_search)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        vectors = self.index.vectors  # a compressed index re-ranks with them
        rows = None if vectors is None else RowSource(vectors)
        state["index"] = (PicklableIndex(self.index.index), self.index.info, rows)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from backend.latent.search import SimilarityIndex

        index, info, rows = state.pop("index")
        self.__dict__.update(state)
        self.index = SimilarityIndex(index.index, info, None if rows is None else rows.array)


@dataclass
class ForestPartition:
    """Isolation-forest anomaly scores (negated ``score_samples``) of rows ``[lo, hi)``."""

    forest: Any  # a fitted sklearn IsolationForest
    source: RowSource

    def __call__(self, rows: tuple[int, int]) -> np.ndarray:
        return (-self.forest.score_samples(self.source.read(*rows))).astype(np.float32)


@dataclass
class PlacePartition:
    """Map positions of rows ``[lo, hi)``: weighted mean of their nearest landmarks."""

    landmarks: PicklableIndex
    landmark_coords: np.ndarray
    k: int
    sharpness: float
    source: RowSource

    def __call__(self, rows: tuple[int, int]) -> np.ndarray:
        from backend.latent.projection import interpolate

        k = min(self.k, self.landmarks.index.ntotal)
        sims, ids = self.landmarks.index.search(as_matrix(self.source.unit(*rows)), k)
        return interpolate(sims, ids, self.landmark_coords, self.sharpness)


@dataclass
class IvfAssignPartition:
    """Inverted list of each row of ``[lo, hi)`` in a trained IVF index (its coarse quantizer's
    nearest centroid): the costly half of adding vectors to an IVF index."""

    quantizer: PicklableIndex
    source: RowSource

    def __call__(self, rows: tuple[int, int]) -> np.ndarray:
        _, lists = self.quantizer.index.search(as_matrix(self.source.unit(*rows)), 1)
        return np.ascontiguousarray(lists.ravel(), dtype=np.int64)
