"""Vector helpers shared by the latent services: FAISS threads, normalisation, batched kNN."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np
from tqdm.auto import tqdm

CHUNK = 65_536


def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@functools.cache
def configure_faiss() -> None:
    """Once per process, before the first FAISS work (never at import): one OpenMP team of the
    machine's cores unless the operator set OMP_NUM_THREADS. Single queries run on one thread,
    so the web server's thread pool is not oversubscribed."""
    if "OMP_NUM_THREADS" not in os.environ:
        faiss.omp_set_num_threads(cpu_threads())


def as_matrix(x: np.ndarray, dim: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous (n, D) float32 array; a single vector becomes one row."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"expected vectors of shape (n, D), got {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"vectors have {arr.shape[1]} dimensions, expected {dim}")
    return np.ascontiguousarray(arr)


def normalize(x: np.ndarray) -> np.ndarray:
    """L2-normalised float32 copy of (n, D) rows; all-zero rows stay zero."""
    out = np.array(as_matrix(x), dtype=np.float32, copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    out /= norms
    return out


def iter_unit_chunks(
    x: np.ndarray, chunk: int = CHUNK, desc: str | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, normalised rows)`` over a (possibly memory-mapped) matrix."""
    starts = range(0, len(x), chunk)
    for lo in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, unit="chunk"):
        yield lo, normalize(x[lo : lo + chunk])


def unit_rows(x: np.ndarray, chunk: int = CHUNK, desc: str | None = None) -> np.ndarray:
    """All rows of ``x`` normalised into one in-memory float32 array (read chunk by chunk)."""
    out = np.empty(x.shape, dtype=np.float32)
    for lo, block in iter_unit_chunks(x, chunk, desc):
        out[lo : lo + len(block)] = block
    return out


def knn_inner_product(
    queries: np.ndarray, base: np.ndarray, k: int, chunk: int = CHUNK, desc: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of each query row against ``base`` (BLAS, chunked)."""
    configure_faiss()
    k = min(k, len(base))
    sims = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    starts = range(0, len(queries), chunk)
    for lo in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, unit="chunk"):
        q = as_matrix(queries[lo : lo + chunk])
        sims[lo : lo + len(q)], ids[lo : lo + len(q)] = faiss.knn(
            q, base, k, metric=faiss.METRIC_INNER_PRODUCT
        )
    return sims, ids


def chord_from_cosine(sims: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors from their cosine similarity."""
    return np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None)).astype(np.float32)


@contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Temporarily run FAISS with ``n`` OpenMP threads (process-wide: batch jobs only)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def small_ip_index(vectors: np.ndarray, exact_below: int = 4096) -> faiss.Index:
    """Inner-product index over a modest set (landmarks, labelled objects): exact up to
    ``exact_below`` vectors, HNSW (M=32, efSearch 48: recall@5 ~0.96) above."""
    configure_faiss()
    dim = vectors.shape[1]
    if len(vectors) <= exact_below:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.hnsw.efSearch = 48
    index.add(as_matrix(vectors))
    return index


def search_chunked(
    index: faiss.Index, queries: np.ndarray, k: int, chunk: int = CHUNK, desc: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` over many (already normalised) queries, chunk by chunk."""
    configure_faiss()
    k = min(k, index.ntotal)
    sims = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    starts = range(0, len(queries), chunk)
    for lo in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, unit="chunk"):
        q = as_matrix(queries[lo : lo + chunk])
        sims[lo : lo + len(q)], ids[lo : lo + len(q)] = index.search(q, k)
    return sims, ids
