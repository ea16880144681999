"""Synthetic clustered embeddings with known labels, for tests and benchmarks.

Each cluster is a Gaussian with a low-rank plus isotropic covariance (``centre + width * (B z +
noise)``, ``z`` of ``intrinsic_dim`` dimensions): clusters of different sizes and widths lying
near low-dimensional subspaces, as encoder embeddings do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
    model = _draw_model(rng, dim, n_clusters, intrinsic_dim, noise, separation)
    centres, widths, bases = model.centres, model.widths, model.bases
    labels = rng.choice(n_clusters, size=n, p=model.weights).astype(np.int32)
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


@dataclass(frozen=True)
class ClusterModel:
    """The clusters of :func:`clustered_chunks`: centres, widths, low-rank bases and weights."""

    centres: np.ndarray  # (n_clusters, dim)
    widths: np.ndarray  # (n_clusters,)
    bases: np.ndarray  # (n_clusters, intrinsic_dim, dim)
    weights: np.ndarray  # (n_clusters,) summing to 1
    noise: float


def cluster_model(
    dim: int = 128,
    n_clusters: int = 50,
    *,
    intrinsic_dim: int = 8,
    noise: float = 0.6,
    separation: float = 0.15,
    seed: int = 0,
) -> ClusterModel:
    """The cluster model drawn from ``seed`` (as :func:`clustered_embeddings` draws it)."""
    return _draw_model(
        np.random.default_rng(seed), dim, n_clusters, intrinsic_dim, noise, separation
    )


def _draw_model(
    rng: np.random.Generator,
    dim: int,
    n_clusters: int,
    intrinsic_dim: int,
    noise: float,
    separation: float,
) -> ClusterModel:
    """Centres, widths, bases and weights, drawn in this order from ``rng``."""
    centres = rng.normal(0.0, 1.0, (n_clusters, dim)).astype(np.float32) * separation
    widths = rng.uniform(0.3, 1.2, n_clusters).astype(np.float32)
    bases = rng.normal(0.0, 1.0, (n_clusters, intrinsic_dim, dim)).astype(np.float32)
    bases /= np.sqrt(dim / 4)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    return ClusterModel(centres, widths, bases, weights, noise)


def clustered_block(
    model: ClusterModel, rows: int, seed: int, number: int, *, held_out: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Block ``number`` of ``rows`` float32 embeddings and their labels (rows sorted by
    cluster), drawn from its own
    seed ``(seed, number)``: any block can be made again alone (an exact reference in float32
    for embeddings stored in float16). ``held_out`` blocks come from a separate seed stream,
    so they are never rows of the survey (held-out queries)."""
    rng = np.random.default_rng([seed, 2 if held_out else 1, number])
    n_clusters, intrinsic_dim, dim = model.bases.shape
    labels = np.sort(rng.choice(n_clusters, size=rows, p=model.weights).astype(np.int32))
    z = rng.standard_normal((rows, intrinsic_dim), dtype=np.float32)
    block = rng.standard_normal((rows, dim), dtype=np.float32)
    bounds = np.searchsorted(labels, np.arange(n_clusters + 1))
    for c in range(n_clusters):  # rows sorted by cluster: each cluster is one slice
        part = block[bounds[c] : bounds[c + 1]]
        part *= np.float32(model.noise)
        part += z[bounds[c] : bounds[c + 1]] @ model.bases[c]
        part *= model.widths[c]
        part += model.centres[c]
    return block, labels


def clustered_chunks(
    n: int,
    dim: int = 128,
    n_clusters: int = 50,
    *,
    seed: int = 0,
    chunk: int = 262_144,
    **model_args: float,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(first row, float32 block, labels)`` for ``n`` clustered embeddings, block by
    block (block ``i`` seeded by ``(seed, i)``; never more than ``chunk`` rows in memory)."""
    model = cluster_model(dim, n_clusters, seed=seed, **model_args)  # type: ignore[arg-type]
    for number, lo in enumerate(range(0, n, chunk)):
        block, labels = clustered_block(model, min(chunk, n - lo), seed, number)
        yield lo, block, labels
