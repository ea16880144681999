"""Unsupervised anomaly scorers on embeddings; each returns raw scores, higher = stranger.

- ``knn``: mean Euclidean distance between unit vectors to the ``k`` nearest neighbours. Up to
  :data:`CELL_KNN_ABOVE` objects by FAISS searches (the survey's similarity index when given,
  else an exact or HNSW index built here; HNSW searched with efSearch 96 rather than the tuned
  value: rough neighbours suffice); above, every object's neighbours are searched a cell at a
  time as matrix products (:mod:`backend.latent.cellknn`), with a recall measured on a sample;
- ``lof``: local outlier factor computed from the same kNN graph, fully vectorised;
- ``iforest``: scikit-learn's isolation forest on the raw embeddings.

:func:`rank_normalise` maps any score to [0, 1] by its rank, so scorers with different units
can be averaged.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from backend.latent.partitioned import ForestPartition, KnnPartition, RowSource
from backend.latent.search import SimilarityIndex
from backend.latent.vectors import CHUNK, chord_from_cosine, cpu_threads, unit_rows
from backend.pipeline.execution import Executor, SchedulerSpec, executor, partitions

Scheduler = SchedulerSpec | str | Executor | None

KNN_EF_SEARCH = 96  # rough neighbours are enough for a density score; 5x faster than tuned
#: Above this many objects the kNN graph is searched by cells (:mod:`backend.latent.cellknn`):
#: no index walk per object, no index copy per worker.
CELL_KNN_ABOVE = 200_000


def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Rank of each score scaled to [0, 1] (ties share their mean rank; NaN stays NaN)."""
    x = np.asarray(scores, dtype=np.float64)
    out = np.full(x.shape, np.nan, dtype=np.float64)
    ok = np.isfinite(x)
    n = int(ok.sum())
    if n == 1:
        out[ok] = 1.0
    elif n > 1:
        out[ok] = (rankdata(x[ok], method="average") - 1.0) / (n - 1.0)
    return out.astype(np.float32)


def by_cells(n: int) -> bool:
    """Whether the kNN graph of ``n`` objects is searched by cells (else in an index)."""
    return n > CELL_KNN_ABOVE


def knn_graph(
    unit: np.ndarray | None,
    k: int,
    index: SimilarityIndex | None = None,
    progress: bool = False,
    *,
    rows: np.ndarray | None = None,
    scheduler: Scheduler = None,
    info: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids), each (N, k): every row's ``k`` nearest other rows (unit vectors).
    The searches run per partition where ``scheduler`` says; ``rows`` (e.g. the memory-mapped
    embeddings whose normalised rows are ``unit``; ``unit`` may then be None) is what a worker
    reads, default ``unit`` itself. Above :data:`CELL_KNN_ABOVE` rows they are searched by
    cells and ``index`` is not used; ``info`` (a dict) receives how the graph was made."""
    source = unit if rows is None else rows
    n = len(source)
    k = max(1, min(k, n - 1))
    if by_cells(n):
        from backend.latent.cellknn import cell_knn

        sims, ids, made = cell_knn(source, k + 1, scheduler=scheduler, progress=progress)
        if info is not None:
            info.update(made)
        return _drop_self(sims, ids, k)
    if info is not None:
        info["method"] = "index"
    if unit is None:
        unit = unit_rows(source)
    if index is None or len(index) != n:
        index = SimilarityIndex.build(unit, seed=0)
    task = KnnPartition(index, RowSource(source), k + 1, KNN_EF_SEARCH)
    parts = partitions(n, CHUNK)
    with executor(scheduler) as ex:
        found = ex.map(task, parts, desc="kNN graph" if progress and len(parts) > 1 else None)
    sims = np.concatenate([s for s, _ in found]) if found else np.empty((0, k + 1), np.float32)
    ids = np.concatenate([i for _, i in found]) if found else np.empty((0, k + 1), np.int64)
    return _drop_self(sims, ids, k)


def _drop_self(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id (or, when the search missed it, the last neighbour)."""
    rows = np.arange(len(ids))[:, None]
    is_self = ids == rows
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), ids.shape[1] - 1)
    keep = np.ones(ids.shape, dtype=bool)
    keep[np.arange(len(ids)), drop] = False
    sims = sims[keep].reshape(len(ids), k)
    ids = ids[keep].reshape(len(ids), k)
    missing = ids < 0  # approximate search may return fewer than k: repeat the farthest found
    if missing.any():
        sims = np.where(missing, np.nanmin(np.where(missing, np.inf, sims), axis=1)[:, None], sims)
        ids = np.where(missing, rows, ids)
    return chord_from_cosine(sims), ids


def knn_distance(dist: np.ndarray) -> np.ndarray:
    """Mean distance to the k nearest neighbours."""
    return dist.mean(axis=1)


def local_outlier_factor(dist: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """LOF (Breunig et al. 2000) from a kNN graph: mean lrd of the neighbours / own lrd."""
    k_distance = dist[:, -1]
    reach = np.maximum(dist, k_distance[ids])  # reach-dist(i, j) = max(k-dist(j), d(i, j))
    lrd = 1.0 / np.maximum(reach.mean(axis=1), 1e-12)
    return (lrd[ids].mean(axis=1) / lrd).astype(np.float32)


def isolation_forest(
    embeddings: np.ndarray,
    seed: int = 0,
    n_estimators: int = 200,
    progress: bool = False,
    *,
    scheduler: Scheduler = None,
) -> np.ndarray:
    """Isolation-forest anomaly score (the negated ``score_samples``): fitted once here on a
    sample of at most 100,000 rows, then scored per partition where ``scheduler`` says."""
    from sklearn.ensemble import IsolationForest

    n = len(embeddings)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=min(n, 100_000), replace=False))
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=min(256, n), random_state=seed, n_jobs=cpu_threads()
    ).fit(np.asarray(embeddings[fit_rows], dtype=np.float32))
    parts = partitions(n, 4 * CHUNK)
    with executor(scheduler) as ex:
        blocks = ex.map(
            ForestPartition(forest, RowSource(embeddings)),
            parts,
            desc="isolation forest" if progress and len(parts) > 1 else None,
        )
    return np.concatenate(blocks) if blocks else np.empty(0, np.float32)


__all__ = [
    "by_cells",
    "isolation_forest",
    "knn_distance",
    "knn_graph",
    "local_outlier_factor",
    "rank_normalise",
]
