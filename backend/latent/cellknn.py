"""Every object's ``k`` nearest neighbours among the survey's own rows, searched a cell at a
time (the kNN anomaly scores of millions of objects).

One search per object in a similarity index costs a graph walk (HNSW) or a scan of ``nprobe``
lists (IVF) per query: on 128-d synthetic embeddings 0.45 ms per object with HNSW at efSearch
96 and 4.5 ms with IVF at its tuned nprobe, hours for 10^7 objects on two cores. Here the
queries are the indexed rows themselves, so they are searched together, as matrix products:

1. the unit rows are cut into leaves of about ``cell_size`` rows by k-means (FAISS, trained on
   a sample, every row assigned per partition; at most :data:`MAX_LEAVES` leaves, so that the
   assignment stays a small part of the cost). Two-level k-means (coarse cells cut into
   leaves) assigns faster but its leaves lost a third of the recall at the same probes
   (300,000 synthetic rows: recall@10 0.57 against 0.87 with 32 probes; each row's leaf
   looked for in its 8 nearest coarse cells: 0.75 at 32 probes against 0.86 at 16);
2. each leaf's rows are compared with every row of its ``probes`` nearest leaves (by centroid,
   the leaf itself first) in blocked BLAS products (FAISS's exhaustive search,
   :func:`knn_products`), and the ``k`` most similar are kept;
3. ``probes`` is the smallest of :data:`PROBE_CANDIDATES` whose recall@k against an exact scan
   of all rows reaches ``target_recall`` on :data:`TUNE_QUERIES` sampled rows. That recall and
   how the sample's kNN score (mean distance to the ``k`` nearest) compares with the exact one
   are returned with the neighbours;
4. the :data:`TAIL` most isolated rows, the top of the anomaly ranking, are searched again
   with :data:`TAIL_FACTOR` times the probes (only the leaves not probed yet are read).

Similarities are exact for the neighbours found; only recall is approximate, and a missed
neighbour is replaced by a slightly farther one, so the kNN score errs high by little. Every
step is deterministic per partition, so any scheduler gives the same neighbours. Workers read their rows from the memory-mapped embeddings
(:class:`~backend.latent.partitioned.RowSource`): no copy of an index per worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from scipy.stats import spearmanr

from backend.latent.partitioned import IvfAssignPartition, PicklableIndex, RowSource
from backend.latent.vectors import CHUNK, as_matrix, chord_from_cosine, normalize

CELL_SIZE = 512  # rows per leaf
PROBE_CANDIDATES = (4, 6, 8, 12, 16, 24, 32)
TARGET_RECALL = 0.85  # a density score, not a search: rough neighbours change it little
#: The most isolated rows (this fraction, by the first pass's score) are searched again with
#: TAIL_FACTOR times the probes: their neighbours lie farther, across more leaves, and they
#: are the top of the anomaly ranking.
TAIL, TAIL_FACTOR = 0.02, 2
TUNE_QUERIES = 300
MAX_LEAVES = 8192
KMEANS_ITER = 10
BLAS_FROM = 20  # queries from which FAISS's exhaustive search uses matrix products
_BLAS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Leaves:
    """Rows grouped by leaf: ``order[starts[j]:starts[j + 1]]`` are leaf ``j``'s rows."""

    leaf: np.ndarray  # (N,) leaf of each row
    order: np.ndarray  # (N,) row numbers grouped by leaf, ascending inside a leaf
    starts: np.ndarray  # (n_leaves + 1,)
    centroids: np.ndarray  # (n_leaves, D) unit vectors

    def members(self, j: int) -> np.ndarray:
        return self.order[self.starts[j] : self.starts[j + 1]]


@dataclass
class LeafKnn:
    """``k`` most similar rows among each leaf's probed leaves, for leaves ``[a, b)``:
    ``(rows, similarities (n, k), ids (n, k))``; ids of -1 where fewer rows were probed."""

    source: RowSource
    order: np.ndarray
    starts: np.ndarray
    probes: np.ndarray  # (n_leaves, p)
    k: int
    only: np.ndarray | None = None  # (N,) bool: search only these rows

    def __call__(self, leaves: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out_rows, out_sims, out_ids = [], [], []
        for j in range(*leaves):
            rows = self.order[self.starts[j] : self.starts[j + 1]]
            if self.only is not None:
                rows = rows[self.only[rows]]
            if len(rows) == 0:
                continue
            cand = np.concatenate(
                [self.order[self.starts[i] : self.starts[i + 1]] for i in self.probes[j]]
            )
            sims, idx = knn_products(
                unit_rows_of(self.source.array, rows), unit_rows_of(self.source.array, cand), self.k
            )
            out_rows.append(rows)
            out_sims.append(sims)
            out_ids.append(np.where(idx >= 0, cand[np.maximum(idx, 0)], -1))
        if not out_rows:
            return (
                np.empty(0, np.int64),
                np.empty((0, self.k), np.float32),
                np.empty((0, self.k), np.int64),
            )
        return np.concatenate(out_rows), np.concatenate(out_sims), np.concatenate(out_ids)


def unit_rows_of(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (an integer array) of ``array`` as unit float32 vectors. The fancy index
    already copies, so they are normalised in place: half the memory passes of
    :func:`normalize`, which copies again. All-zero rows stay zero."""
    out = np.ascontiguousarray(array[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    np.maximum(norms, np.float32(1e-12), out=norms)
    out /= norms[:, None]
    return out


def knn_products(queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest inner products of each unit query with ``rows`` (descending) and their
    row numbers, -inf / -1 past the rows there are: FAISS's exhaustive search, blocked matrix
    products reduced by heaps, 2.5 ns per pair where a full product and ``top_k`` take 5-12
    (one thread, 128-d, leaves of 512-1,220 rows probing 32 leaves). FAISS 1.15 takes its BLAS
    path only past :data:`BLAS_FROM` queries by default; a leaf's few hundred queries are
    searched by it too (its SIMD loop costs 7 ns per pair). The setting is FAISS's global one:
    it is restored at once, so other searches (whose floats it would change) never see it.
    The search runs on one thread, as on a Dask worker: a multithreaded BLAS product differs
    in the last bit, and ``sync`` must equal ``local:N`` bitwise."""
    with _BLAS_LOCK:
        default = faiss.cvar.distance_compute_blas_threshold
        threads = faiss.omp_get_max_threads()
        faiss.cvar.distance_compute_blas_threshold = BLAS_FROM
        faiss.omp_set_num_threads(1)
        try:
            sims, idx = faiss.knn(queries, rows, k, metric=faiss.METRIC_INNER_PRODUCT)
        finally:
            faiss.cvar.distance_compute_blas_threshold = default
            faiss.omp_set_num_threads(threads)
    sims[idx < 0] = -np.inf
    return sims.astype(np.float32, copy=False), idx.astype(np.int64, copy=False)


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest values (descending) and their columns; -inf / -1 pad rows with
    fewer than ``k`` columns."""
    n, m = sims.shape
    kk = min(k, m)
    part = (
        np.argpartition(-sims, kk - 1, axis=1)[:, :kk] if kk < m else np.tile(np.arange(m), (n, 1))
    )
    vals = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    if kk < k:
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
    return vals.astype(np.float32), idx.astype(np.int64)


def make_leaves(source: RowSource, cell_size: int, seed: int, ex: Any) -> Leaves:
    """k-means leaves of about ``cell_size`` unit rows (at most :data:`MAX_LEAVES`): trained
    here on a sample (FAISS, seeded), every row assigned per partition on ``ex``."""
    from backend.pipeline.execution import partitions

    n, dim = source.array.shape
    n_leaves = int(np.clip(n // cell_size, 1, MAX_LEAVES))
    if n_leaves == 1:
        leaf = np.zeros(n, np.int64)
        centroids = normalize(np.asarray(source.array[: min(n, CHUNK)]).mean(axis=0, keepdims=True))
    else:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, 64 * n_leaves), replace=False))
        km = faiss.Kmeans(
            dim, n_leaves, niter=KMEANS_ITER, seed=seed, spherical=True, max_points_per_centroid=64
        )
        km.train(normalize(source.array[sample]))
        centroids = as_matrix(km.centroids)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(centroids)
        task = IvfAssignPartition(PicklableIndex(quantizer), source)
        leaf = np.concatenate(ex.map(task, partitions(n, CHUNK)))
    order = np.argsort(leaf, kind="stable")
    starts = np.searchsorted(leaf[order], np.arange(len(centroids) + 1))
    return Leaves(leaf, order, starts, centroids)


def nearest_leaves(centroids: np.ndarray, p: int) -> np.ndarray:
    """(n_leaves, p) leaves nearest each leaf by centroid similarity, the leaf itself first."""
    n = len(centroids)
    p = min(p, n)
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(as_matrix(centroids))
    _, nn = index.search(as_matrix(centroids), p)
    out = np.empty((n, p), np.int64)
    for j in range(n):
        others = nn[j][nn[j] != j]
        out[j, 0] = j
        out[j, 1:] = others[: p - 1]
    return out


def exact_neighbours(source: RowSource, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` (similarities, ids) of ``rows`` among all rows of ``source``."""
    queries = normalize(source.array[rows])
    best_s = np.full((len(rows), 0), -np.inf, np.float32)
    best_i = np.empty((len(rows), 0), np.int64)
    for lo in range(0, len(source), CHUNK):
        block = normalize(source.array[lo : lo + CHUNK])
        s = np.concatenate([best_s, queries @ block.T], axis=1)
        i = np.concatenate(
            [best_i, np.broadcast_to(np.arange(lo, lo + len(block)), (len(rows), len(block)))],
            axis=1,
        )
        best_s, idx = top_k(s, k)
        best_i = np.take_along_axis(i, idx, axis=1)
    return best_s, best_i


def choose_probes(
    source: RowSource, leaves: Leaves, probes: np.ndarray, k: int, target_recall: float, seed: int
) -> dict[str, Any]:
    """Smallest probe count reaching ``target_recall`` (recall@k of the neighbours other than
    the row itself) on sampled rows, with its recall and the sample's kNN-score fidelity."""
    n = len(source)
    rng = np.random.default_rng(seed + 11)
    rows = np.sort(rng.choice(n, size=min(n, TUNE_QUERIES), replace=False))
    exact_s, exact_i = exact_neighbours(source, rows, k + 1)
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {p: ([], []) for p in PROBE_CANDIDATES}
    for r in rows:
        j = leaves.leaf[r]
        parts = [leaves.members(i) for i in probes[j]]
        cand = np.concatenate(parts)
        rank = np.repeat(np.arange(len(parts)), [len(x) for x in parts])
        sims = normalize(source.array[[r]]) @ normalize(source.array[cand]).T
        for p in PROBE_CANDIDATES:
            keep = rank < p
            s, idx = top_k(sims[:, keep], k + 1)
            found[p][0].append(s[0])
            found[p][1].append(np.where(idx[0] >= 0, cand[keep][np.maximum(idx[0], 0)], -1))
    exact_ids = [_others(ids, r, k) for ids, r in zip(exact_i, rows, strict=True)]
    exact_score = _score(exact_s, exact_i, rows, k)
    info: dict[str, Any] = {}
    for p in PROBE_CANDIDATES:
        sims, ids = np.array(found[p][0]), np.array(found[p][1])
        recall = float(np.mean([
            len(set(_others(got, r, k)) & set(want)) / k
            for got, r, want in zip(ids, rows, exact_ids, strict=True)
        ]))  # fmt: skip
        score = _score(sims, ids, rows, k)
        info = {
            "probes": int(min(p, probes.shape[1])),
            "recall_at_k": round(recall, 4),
            "score_spearman": round(float(spearmanr(score, exact_score)[0]), 4),
            "score_rel_error_median": round(float(np.median(score / exact_score - 1)), 5),
            "score_rel_error_p95": round(float(np.quantile(score / exact_score - 1, 0.95)), 5),
        }
        if recall >= target_recall or p >= probes.shape[1]:
            break
    return info


def _others(ids: np.ndarray, row: int, k: int) -> np.ndarray:
    return ids[ids != row][:k]


def _score(sims: np.ndarray, ids: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Mean chord distance to the ``k`` nearest other rows (the ``knn`` scorer)."""
    keep = ids != rows[:, None]
    out = np.empty(len(rows))
    for i in range(len(rows)):
        out[i] = chord_from_cosine(sims[i][keep[i]][:k]).mean()
    return out


def leaf_groups(starts: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Contiguous leaf ranges of about ``rows`` rows each (fixed by the leaves only)."""
    groups, a = [], 0
    for j in range(1, len(starts)):
        if starts[j] - starts[a] >= rows or j == len(starts) - 1:
            groups.append((a, j))
            a = j
    return groups


def refine_tail(
    sims: np.ndarray,
    ids: np.ndarray,
    task: LeafKnn,
    probes: np.ndarray,
    groups: list[tuple[int, int]],
    ex: Any,
) -> dict[str, int]:
    """Search the :data:`TAIL` most isolated rows again with :data:`TAIL_FACTOR` times the
    probes, in place (a search over more leaves only finds nearer neighbours)."""
    n, p = len(sims), task.probes.shape[1]
    wider = min(probes.shape[1], TAIL_FACTOR * p)
    n_tail = int(np.ceil(TAIL * n))
    if wider <= p or n_tail == 0:
        return {"tail_rows": 0, "tail_probes": p}
    with np.errstate(invalid="ignore"):
        score = chord_from_cosine(np.maximum(sims[:, 1:], -1.0)).mean(axis=1)
    only = np.zeros(n, bool)
    only[np.argsort(-score, kind="stable")[:n_tail]] = True
    # only the leaves not probed yet are searched; their neighbours merge with those found
    more = LeafKnn(task.source, task.order, task.starts, probes[:, p:wider], task.k, only)
    for rows, s, i in ex.imap(more, groups):
        both_s = np.concatenate([sims[rows], s], axis=1)
        both_i = np.concatenate([ids[rows], i], axis=1)
        sims[rows], best = top_k(both_s, task.k)
        ids[rows] = np.take_along_axis(both_i, best, axis=1)
    return {"tail_rows": n_tail, "tail_probes": int(wider)}


def cell_knn(
    embeddings: np.ndarray,
    k: int,
    *,
    cell_size: int | None = None,
    target_recall: float = TARGET_RECALL,
    seed: int = 0,
    scheduler: Any = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(similarities (N, k), ids (N, k), info)``: each row's ``k`` most cosine-similar rows of
    ``embeddings`` (itself included, as an index search would return it), ids -1 where fewer
    were probed (``cell_size`` default :data:`CELL_SIZE`); ``info`` holds the leaves, the probe count, its sampled recall and score
    fidelity, and the seconds of each stage. Runs per partition where ``scheduler`` says."""
    from backend.pipeline.execution import executor

    n = len(embeddings)
    cell_size = cell_size or CELL_SIZE
    source = RowSource(embeddings)
    timings: dict[str, float] = {}
    with executor(scheduler) as ex:
        t0 = time.perf_counter()
        leaves = make_leaves(source, cell_size, seed, ex)
        probes = nearest_leaves(leaves.centroids, TAIL_FACTOR * max(PROBE_CANDIDATES))
        timings["leaves_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        info = choose_probes(source, leaves, probes, k - 1, target_recall, seed)
        timings["tune_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        task = LeafKnn(source, leaves.order, leaves.starts, probes[:, : info["probes"]], k)
        groups = leaf_groups(leaves.starts, CHUNK)
        sims = np.empty((n, k), np.float32)
        ids = np.empty((n, k), np.int64)
        desc = "kNN by cells" if progress and len(groups) > 1 else None
        for rows, s, i in ex.imap(task, groups, desc=desc):
            sims[rows], ids[rows] = s, i
        timings["search_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        info.update(refine_tail(sims, ids, task, probes, groups, ex))
        timings["tail_s"] = round(time.perf_counter() - t0, 2)
    info.update(
        method="cells", leaves=len(leaves.centroids), cell_size=cell_size,
        target_recall=target_recall, timings=timings,
    )  # fmt: skip
    return sims, ids, info


__all__ = ["cell_knn", "top_k"]
