"""Synthetic clustered embeddings with known labels, for tests and benchmarks.

Each cluster is a Gaussian with a low-rank plus isotropic covariance (``centre + width * (B z +
noise)``, ``z`` of ``intrinsic_dim`` dimensions): clusters of different sizes and widths lying
near low-dimensional subspaces, as encoder embeddings do.
"""

from __future__ import annotations

import numpy as np


def clustered_embeddings(
    n: int,
    dim: int = 128,
    n_clusters: int = 50,
    *,
    intrinsic_dim: int = 8,
    noise: float = 0.6,
    separation: float = 0.15,
    seed: int = 0,
    out: np.ndarray | None = None,
    chunk: int = 262_144,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(embeddings (n, dim) float32, cluster labels (n,) int32)``.

    ``out`` (e.g. a writable memmap) receives the embeddings when given, so 10M rows can be made
    without holding them twice in memory.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (n_clusters, dim)).astype(np.float32) * separation
    widths = rng.uniform(0.3, 1.2, n_clusters).astype(np.float32)
    bases = rng.normal(0.0, 1.0, (n_clusters, intrinsic_dim, dim)).astype(np.float32)
    bases /= np.sqrt(dim / 4)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n, p=weights).astype(np.int32)
    x = out if out is not None else np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        lab = labels[lo:hi]
        z = rng.normal(0.0, 1.0, (hi - lo, intrinsic_dim)).astype(np.float32)
        block = np.einsum("nq,nqd->nd", z, bases[lab], optimize=True)
        block += rng.normal(0.0, noise, (hi - lo, dim)).astype(np.float32)
        block *= widths[lab, None]
        block += centres[lab]
        x[lo:hi] = block
    return x, labels
