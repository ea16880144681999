"""How faithful a 2-D map is to the embedding space: kNN preservation and trustworthiness."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from backend.latent.vectors import knn_inner_product, normalize


def high_dim_neighbours(embeddings: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows by cosine similarity (exact)."""
    unit = normalize(embeddings)
    return knn_inner_product(unit, unit, k + 1)[1][:, 1:]


def map_neighbours(coords: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each point's k nearest other points on the 2-D map."""
    xy = np.asarray(coords, dtype=np.float64)
    return cKDTree(xy).query(xy, k=k + 1, workers=-1)[1][:, 1:]


def knn_preservation(high: np.ndarray, low: np.ndarray) -> float:
    """Mean fraction of each point's map neighbours that are also embedding neighbours."""
    k = high.shape[1]
    both = (np.sort(high, axis=1)[:, :, None] == low[:, None, :]).any(axis=1)
    return float(both.sum() / (len(high) * k))


def trustworthiness(embeddings: np.ndarray, coords: np.ndarray, k: int = 10) -> float:
    """scikit-learn's trustworthiness on cosine distances (O(n^2) memory: keep n ~ 10^4)."""
    from sklearn.manifold import trustworthiness as sk_trust

    return float(sk_trust(normalize(embeddings), np.asarray(coords), n_neighbors=k))
