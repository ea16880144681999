"""Unsupervised anomaly scorers on embeddings; each returns raw scores, higher = stranger.

- ``knn``: mean Euclidean distance between unit vectors to the ``k`` nearest neighbours
  (FAISS: the survey's similarity index when given, else an exact or HNSW index built here;
  HNSW searched with efSearch 96 rather than the tuned value: rough neighbours suffice);
- ``lof``: local outlier factor computed from the same kNN graph, fully vectorised;
- ``iforest``: scikit-learn's isolation forest on the raw embeddings.

:func:`rank_normalise` maps any score to [0, 1] by its rank, so scorers with different units
can be averaged.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from backend.latent.search import SimilarityIndex
from backend.latent.vectors import CHUNK, chord_from_cosine, cpu_threads

KNN_EF_SEARCH = 96  # rough neighbours are enough for a density score; 5x faster than tuned


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


def knn_graph(
    unit: np.ndarray, k: int, index: SimilarityIndex | None = None, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids), each (N, k): every row's ``k`` nearest other rows (unit vectors)."""
    n = len(unit)
    k = max(1, min(k, n - 1))
    if index is None or len(index) != n:
        index = SimilarityIndex.build(unit, seed=0)
    sims = np.empty((n, k + 1), dtype=np.float32)
    ids = np.empty((n, k + 1), dtype=np.int64)
    from tqdm.auto import tqdm

    starts = range(0, n, CHUNK)
    for lo in tqdm(starts, desc="kNN graph", disable=not progress or len(starts) < 2):
        s, i = index.search_unit(unit[lo : lo + CHUNK], k + 1, ef_search=KNN_EF_SEARCH)
        sims[lo : lo + len(s)], ids[lo : lo + len(s)] = s, i
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
    embeddings: np.ndarray, seed: int = 0, n_estimators: int = 200, progress: bool = False
) -> np.ndarray:
    """Isolation-forest anomaly score (the negated ``score_samples``), chunk by chunk."""
    from sklearn.ensemble import IsolationForest

    n = len(embeddings)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=min(n, 100_000), replace=False))
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=min(256, n), random_state=seed, n_jobs=cpu_threads()
    ).fit(np.asarray(embeddings[fit_rows], dtype=np.float32))
    out = np.empty(n, dtype=np.float32)
    from tqdm.auto import tqdm

    starts = range(0, n, 4 * CHUNK)
    for lo in tqdm(starts, desc="isolation forest", disable=not progress or len(starts) < 2):
        block = np.asarray(embeddings[lo : lo + 4 * CHUNK], dtype=np.float32)
        out[lo : lo + len(block)] = -forest.score_samples(block)
    return out


__all__ = [
    "isolation_forest",
    "knn_distance",
    "knn_graph",
    "local_outlier_factor",
    "rank_normalise",
]
