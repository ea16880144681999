"""The 2-D map of a survey's latent space: UMAP on landmarks, kNN placement of everything else.

Fitting umap-learn on millions of points takes hours on two cores, and fitting it on the first
rows misses whatever is not among them. :class:`LatentMap` instead

1. L2-normalises the embeddings (the map, like the search, is about cosine similarity),
2. picks ``n_landmarks`` landmarks spread over the space (:mod:`backend.latent.landmarks`),
3. fits UMAP on the landmarks only (seeded, so the map is reproducible),
4. places every other object, and any new one, at a weighted mean of the 2-D positions of its
   ``k`` nearest landmarks in embedding space, with weights ``exp(-b (d_j - d_1) / s)``: ``d``
   the Euclidean distances between unit vectors, ``s`` the mean of ``d_j - d_1`` over the ``k``
   landmarks (a local scale, as UMAP's), ``b`` the ``sharpness``.

``k=5, sharpness=4`` was chosen on synthetic clustered embeddings: it keeps more of the 10-NN
than a full UMAP does without collapsing points onto landmarks (``docs/results.md``). The
landmark search is exact (FAISS flat) for up to 4,096 landmarks and HNSW above (built on one
thread so the map is reproducible; stored inside ``map_landmarks.npz``). Placing one new point
takes well under a millisecond.
The map persists as ``map.npy`` (N, 2) plus ``map_landmarks.npz`` and ``map.json``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from backend.atomic import atomic_write, atomic_write_json
from backend.latent.errors import LatentError, MissingProductError
from backend.latent.landmarks import select_landmarks
from backend.latent.source import MAP_FILE, MAP_LANDMARKS_FILE, MAP_META_FILE
from backend.latent.vectors import (
    CHUNK,
    as_matrix,
    faiss_threads,
    normalize,
    small_ip_index,
)

log = logging.getLogger(__name__)
MIN_OBJECTS = 10


@dataclass(frozen=True)
class MapParams:
    """How a map was (or is to be) made."""

    n_landmarks: int = 20_000
    n_neighbors: int = 15  # UMAP
    min_dist: float = 0.1  # UMAP
    k: int = 5  # landmarks used to place each object
    sharpness: float = 4.0  # how strongly the nearest landmarks dominate the placement
    seed: int = 0
    landmark_power: float = 0.5  # landmark quota per k-means cell ~ size ** power


class LatentMap:
    """2-D coordinates of every object plus what is needed to place new ones.

    Read-only after construction; safe to share between threads.
    """

    def __init__(
        self,
        coords: np.ndarray,
        landmark_indices: np.ndarray,
        landmark_vectors: np.ndarray,
        landmark_coords: np.ndarray,
        params: MapParams,
        info: dict[str, Any] | None = None,
        landmark_index: faiss.Index | None = None,
    ) -> None:
        self.coords = coords
        self.landmark_indices = np.asarray(landmark_indices, dtype=np.int64)
        self.landmark_vectors = as_matrix(landmark_vectors)
        self.landmark_coords = np.asarray(landmark_coords, dtype=np.float32)
        self.params = params
        self.info = dict(info or {})
        self._index = landmark_index or small_ip_index(self.landmark_vectors)

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def dim(self) -> int:
        return self.landmark_vectors.shape[1]

    # -- fitting -----------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        params: MapParams | None = None,
        progress: bool = False,
        scheduler: Any = None,
    ) -> LatentMap:
        """Map all rows of ``embeddings`` (N, D), memory-mapped or not: UMAP on the landmarks
        here, then every object placed per partition where ``scheduler`` says
        (:mod:`backend.pipeline.execution`)."""
        params = params or MapParams()
        n = len(embeddings)
        if n < MIN_OBJECTS:
            raise LatentError(f"a map needs at least {MIN_OBJECTS} objects, got {n}")
        timings: dict[str, float] = {}
        unit = _UnitRows(embeddings)  # normalised as read: no in-memory copy of N x D

        t0 = time.perf_counter()
        idx = select_landmarks(unit, params.n_landmarks, params.seed, power=params.landmark_power)
        timings["landmarks_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        lm_vectors = np.ascontiguousarray(unit[idx])
        lm_coords = fit_umap(lm_vectors, params)
        timings["umap_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with faiss_threads(1):  # HNSW insertion order, hence the graph, fixed by the seed
            lm_index = small_ip_index(lm_vectors)
        result = cls(
            np.empty((n, 2), np.float32), idx, lm_vectors, lm_coords, params, None, lm_index
        )
        result._place_all(embeddings, progress, scheduler)
        timings["place_s"] = time.perf_counter() - t0
        result.info = {"n": n, "dim": unit.shape[1], "timings": timings}
        del unit
        return result

    def _place_all(self, embeddings: np.ndarray, progress: bool, scheduler: Any = None) -> None:
        """Place every row, :data:`CHUNK` rows per task; the landmarks keep their UMAP
        positions."""
        from backend.latent.partitioned import PicklableIndex, PlacePartition, RowSource
        from backend.pipeline.execution import executor, partitions

        task = PlacePartition(
            PicklableIndex(self._index), self.landmark_coords, self.params.k,
            self.params.sharpness, RowSource(embeddings),
        )  # fmt: skip
        parts = partitions(len(embeddings), CHUNK)
        with executor(scheduler) as ex:
            desc = "place" if progress and len(parts) > 1 else None
            for (lo, hi), xy in zip(parts, ex.imap(task, parts, desc=desc), strict=True):
                self.coords[lo:hi] = xy
        self.coords[self.landmark_indices] = self.landmark_coords

    # -- placing -----------------------------------------------------------------------------
    def place(self, vectors: np.ndarray) -> np.ndarray:
        """(n, 2) map positions of new embeddings (n, D) (or one (D,) vector)."""
        try:
            x = as_matrix(vectors, self.dim)
        except ValueError as exc:
            raise LatentError(f"cannot place embeddings on the map: {exc}") from None
        if not np.isfinite(x).all():
            raise LatentError("cannot place embeddings with NaN or infinite values on the map")
        return self._place_unit(normalize(x))

    def _place_unit(self, unit: np.ndarray) -> np.ndarray:
        k = min(self.params.k, len(self.landmark_vectors))
        sims, ids = self._index.search(as_matrix(unit), k)
        return interpolate(sims, ids, self.landmark_coords, self.params.sharpness)

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write ``map_landmarks.npz``, ``map.npy`` then ``map.json`` (each atomically)."""
        directory = Path(directory)
        fit_id = uuid.uuid4().hex
        atomic_write(
            directory / MAP_LANDMARKS_FILE,
            lambda tmp: _save_npz(
                tmp,
                fit_id=np.array(fit_id),
                indices=self.landmark_indices,
                vectors=self.landmark_vectors,
                coords=self.landmark_coords,
                index=faiss.serialize_index(self._index),
            ),
        )
        atomic_write(directory / MAP_FILE, lambda tmp: _save_npy(tmp, self.coords))
        meta = {
            "fit_id": fit_id,
            "params": asdict(self.params),
            "n": len(self),
            "dim": self.dim,
            "n_landmarks": len(self.landmark_indices),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **{k: v for k, v in self.info.items() if k not in {"n", "dim"}},
        }
        atomic_write_json(directory / MAP_META_FILE, meta)

    @classmethod
    def load(cls, directory: Path) -> LatentMap:
        """Open a saved map; ``map.npy`` is memory-mapped."""
        directory = Path(directory)
        paths = [directory / f for f in (MAP_META_FILE, MAP_LANDMARKS_FILE, MAP_FILE)]
        if not all(p.is_file() for p in paths):
            raise MissingProductError(f"no map in {directory}; run `python -m backend map`")
        meta = json.loads(paths[0].read_text())
        with np.load(paths[1]) as lm:
            if str(lm["fit_id"]) != meta["fit_id"]:
                raise LatentError(f"{directory}: map files are from different fits; rerun map")
            indices, vectors, coords = lm["indices"], lm["vectors"], lm["coords"]
            index = faiss.deserialize_index(lm["index"])
        xy = np.load(paths[2], mmap_mode="r")
        if xy.shape != (meta["n"], 2):
            raise LatentError(f"{paths[2]}: shape {xy.shape}, expected ({meta['n']}, 2)")
        info = {k: v for k, v in meta.items() if k not in {"params", "fit_id"}}
        return cls(xy, indices, vectors, coords, MapParams(**meta["params"]), info, index)


class _UnitRows:
    """Rows of an (N, D) matrix (memory-mapped or not), L2-normalised as they are read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, key: Any) -> np.ndarray:
        return normalize(self.array[key])


def interpolate(
    sims: np.ndarray, ids: np.ndarray, coords: np.ndarray, sharpness: float = 4.0
) -> np.ndarray:
    """Weighted mean of landmark positions ``coords[ids]`` (n, k) from cosine ``sims``."""
    valid = ids >= 0
    d = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None))
    d = np.where(valid, d, np.inf)
    gap = d - d[:, :1]
    finite = np.where(valid, gap, 0.0)
    scale = finite.sum(axis=1, keepdims=True) / np.maximum(valid.sum(axis=1, keepdims=True), 1)
    w = np.exp(-sharpness * gap / np.maximum(scale, 1e-6))
    w = np.where(valid, w, 0.0)
    w /= w.sum(axis=1, keepdims=True)
    xy = np.einsum("nk,nkc->nc", w, coords[np.where(valid, ids, 0)])
    return xy.astype(np.float32)


def fit_umap(unit: np.ndarray, params: MapParams) -> np.ndarray:
    """Seeded umap-learn 2-D layout of unit vectors (Euclidean on the sphere ~ cosine)."""
    import umap  # heavy import (numba); only when fitting

    n_neighbors = max(2, min(params.n_neighbors, len(unit) - 1))
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        n_components=2,
        min_dist=params.min_dist,
        metric="euclidean",
        random_state=params.seed,
        n_jobs=1,  # a seed makes umap-learn single-threaded anyway
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spectral-init and n_jobs chatter
        coords = reducer.fit_transform(unit)
    return np.asarray(coords, dtype=np.float32)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.asarray(array))


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


__all__ = ["LatentMap", "MapParams", "fit_umap", "interpolate"]
