"""Choose landmarks that cover an embedding space: stratified sampling over k-means cells.

Uniform sampling leaves rare regions (often the interesting ones) without landmarks. Here the
space is cut into k-means cells (FAISS) and each cell gets a quota proportional to
``size ** power`` (``power=0.5`` favours small cells), sampled at random inside the cell.
"""

from __future__ import annotations

import faiss
import numpy as np

from backend.latent.vectors import CHUNK, as_matrix


def stratify(unit: np.ndarray, n_cells: int, seed: int = 0, train_size: int = 65_536) -> np.ndarray:
    """Cell of each row: k-means (FAISS) on a sample, then nearest centroid for all rows."""
    n, dim = unit.shape
    n_cells = max(1, min(n_cells, n // 4 or 1))
    if n_cells == 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    sample = unit[np.sort(rng.choice(n, size=min(n, max(train_size, 40 * n_cells)), replace=False))]
    kmeans = faiss.Kmeans(dim, n_cells, niter=15, seed=seed, max_points_per_centroid=256)
    kmeans.train(as_matrix(sample))
    cells = np.empty(n, dtype=np.int64)
    for lo in range(0, n, CHUNK):
        cells[lo : lo + CHUNK] = kmeans.index.search(as_matrix(unit[lo : lo + CHUNK]), 1)[1][:, 0]
    return cells


def quotas(sizes: np.ndarray, total: int, power: float = 0.5) -> np.ndarray:
    """Integer quotas summing to ``min(total, sizes.sum())``, each at most its cell's size."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(min(total, sizes.sum()))
    quota = np.zeros_like(sizes)
    remaining = total
    while remaining > 0:  # largest remainders; cells that are full pass their share on
        want = np.where(quota < sizes, sizes.astype(np.float64) ** power, 0.0)
        exact = want / want.sum() * remaining
        share = np.floor(exact).astype(np.int64)
        extra = remaining - int(share.sum())
        share[np.argsort(share - exact, kind="stable")[:extra]] += 1
        quota += np.minimum(share, sizes - quota)
        remaining = total - int(quota.sum())
    return quota


def select_landmarks(
    unit: np.ndarray,
    n_landmarks: int,
    seed: int = 0,
    n_cells: int | None = None,
    power: float = 0.5,
) -> np.ndarray:
    """Sorted indices of ``n_landmarks`` rows of ``unit`` spread over the whole space."""
    n = len(unit)
    if n_landmarks >= n:
        return np.arange(n, dtype=np.int64)
    n_cells = n_cells or max(1, min(256, n_landmarks // 50))
    cells = stratify(unit, n_cells, seed)
    sizes = np.bincount(cells, minlength=cells.max() + 1)
    quota = quotas(sizes, n_landmarks, power)
    rng = np.random.default_rng(seed + 1)
    order = np.lexsort((rng.random(n), cells))  # by cell, random inside a cell
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank_in_cell = np.arange(n) - starts[cells[order]]
    chosen = order[rank_in_cell < quota[cells[order]]]
    return np.sort(chosen)
