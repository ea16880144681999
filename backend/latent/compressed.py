"""Compressed similarity index for large surveys: IVF-PQ, inverted lists on disk, exact re-ranking.

At 10^8 objects x 128 dimensions the float32 vectors are 51 GB; this index keeps in memory only
the coarse quantizer (``nlist`` centroids) and the PQ codebooks. Each vector is stored as ``m``
one-byte PQ codes (plus its 8-byte id) in the inverted lists of ``index.ivfdata``, a file FAISS
memory-maps (:class:`faiss.OnDiskInvertedLists`), so the operating system pages in only the
lists a query probes. A query takes ``depth * k`` candidates from the PQ scan and re-ranks them
by their exact cosine similarity, read from the memory-mapped ``embeddings.npy``.

Building never holds the survey in memory: the quantizer and the codebooks are trained on a
sample, then the rows are encoded chunk by chunk into in-memory IVF-PQ blocks of ``block_rows``
rows, each written to a scratch file and merged into the on-disk lists at the end
(``OnDiskInvertedLists.merge_from_multiple``, which lays every list out contiguously).
"""

from __future__ import annotations

import functools
import mmap
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from backend.latent.errors import LatentError
from backend.latent.vectors import CHUNK, normalize
from backend.pipeline.storage import INDEX_DATA_FILE

BLOCK_ROWS = 1 << 21  # rows encoded into one in-memory block before it goes to disk
DEPTHS = (10, 20, 40)  # re-ranking depths tried by the tuning, candidates per neighbour
MAX_CANDIDATES = 16_384  # upper bound of the candidates of one query
RERANK_BATCH = 65_536  # candidates re-ranked at once (x D floats in memory)
READ_THREADS = 32  # concurrent reads of candidate rows from a file the page cache cannot hold
_STDOUT_LOCK = threading.Lock()
Assigned = tuple[tuple[int, int], np.ndarray]  # rows [lo, hi) and the coarse list of each


@dataclass(frozen=True)
class PQParams:
    """Shape of an IVF-PQ index: coarse lists, PQ sub-quantizers and their bits."""

    nlist: int
    m: int
    nbits: int = 8


def pq_params(n: int, dim: int) -> PQParams:
    """``nlist``: sqrt(N)/2 lists (16..4,096; assigning vectors to lists is the build's cost on
    two cores); ``m``: the largest divisor of ``dim`` up to ``dim / 4`` (32 bytes for 128-d);
    8 bits per code, fewer when there are fewer than 256 rows to train the codebooks on."""
    nlist = int(np.clip(np.sqrt(n) / 2, 16, 4096))
    m = max(d for d in range(1, max(1, dim // 4) + 1) if dim % d == 0)
    nbits = int(np.clip(np.floor(np.log2(max(n, 2))), 1, 8))
    return PQParams(nlist=nlist, m=m, nbits=nbits)


def build_ivfpq(
    embeddings: np.ndarray,
    workdir: Path,
    *,
    params: PQParams | None = None,
    seed: int = 0,
    block_rows: int = BLOCK_ROWS,
    assign: Callable[[faiss.Index], Iterator[Assigned]] | None = None,
) -> faiss.IndexIVFPQ:
    """An IVF-PQ index (inner product) of every row of ``embeddings`` (normalised chunk by
    chunk) whose lists live in ``workdir / index.ivfdata``.

    ``assign``, when given, is called with the trained coarse quantizer and yields
    ``((lo, hi), coarse list of each row)`` for consecutive row ranges (the assignment, the
    costly half of adding, done per partition elsewhere); otherwise it is done here.
    """
    n, dim = embeddings.shape
    params = params or pq_params(n, dim)
    if dim % params.m:
        raise LatentError(f"PQ needs m dividing the dimension: m={params.m}, dim={dim}")
    trained = _trained(embeddings, params, seed)
    assigned = (assign or partial(_assign_here, embeddings=embeddings))(trained.quantizer)
    workdir = Path(workdir)
    scratch = Path(tempfile.mkdtemp(prefix=f".ivfpq-{os.getpid()}-", dir=workdir))
    try:
        blocks = _encode_blocks(trained, embeddings, assigned, scratch, block_rows)
        return _merge_on_disk(trained, blocks, workdir / INDEX_DATA_FILE)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _trained(embeddings: np.ndarray, params: PQParams, seed: int) -> faiss.IndexIVFPQ:
    """An empty IVF-PQ index trained on a sample (64 rows per list, at least 10k rows)."""
    n, dim = embeddings.shape
    index = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(dim), dim, params.nlist, params.m, params.nbits,
        faiss.METRIC_INNER_PRODUCT,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    size = min(n, max(64 * params.nlist, 10_000))
    sample = np.sort(rng.choice(n, size=size, replace=False))
    index.cp.seed = seed
    index.cp.niter = 10
    index.pq.cp.seed = seed
    index.train(normalize(embeddings[sample]))
    return index


def _assign_here(quantizer: faiss.Index, embeddings: np.ndarray) -> Iterator[Assigned]:
    for lo in range(0, len(embeddings), CHUNK):
        hi = min(lo + CHUNK, len(embeddings))
        _, lists = quantizer.search(normalize(embeddings[lo:hi]), 1)
        yield (lo, hi), lists.reshape(-1)


def _encode_blocks(
    trained: faiss.IndexIVFPQ,
    embeddings: np.ndarray,
    assigned: Iterator[Assigned],
    scratch: Path,
    block_rows: int,
) -> list[Path]:
    """Encode rows into blocks of about ``block_rows`` rows, each written to ``scratch``."""
    template = faiss.serialize_index(trained)
    paths: list[Path] = []
    block: faiss.IndexIVFPQ | None = None
    expected = 0
    for (lo, hi), lists in assigned:
        if lo != expected:
            raise LatentError(f"list assignment skipped rows {expected}..{lo}")
        expected = hi
        if block is None:
            block = faiss.deserialize_index(template)
        x = normalize(embeddings[lo:hi])
        ids = np.arange(lo, hi, dtype=np.int64)
        lists = np.ascontiguousarray(lists, dtype=np.int64)
        block.add_core(hi - lo, faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(lists))
        if block.ntotal >= block_rows:
            paths.append(_write_block(block, scratch, len(paths)))
            block = None
    if expected != len(embeddings):
        raise LatentError(f"list assignment stopped at row {expected} of {len(embeddings)}")
    if block is not None:
        paths.append(_write_block(block, scratch, len(paths)))
    return paths


def _write_block(block: faiss.IndexIVFPQ, scratch: Path, number: int) -> Path:
    path = scratch / f"block-{number:05d}.faiss"
    faiss.write_index(block, str(path))
    return path


def _merge_on_disk(
    trained: faiss.IndexIVFPQ, blocks: list[Path], data_path: Path
) -> faiss.IndexIVFPQ:
    """``trained`` with the lists of every block merged into ``data_path`` (memory-mapped)."""
    opened = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP) for p in blocks]
    lists = faiss.InvertedListsPtrVector()
    for block in opened:
        lists.push_back(block.invlists)
    data_path.unlink(missing_ok=True)
    on_disk = faiss.OnDiskInvertedLists(trained.nlist, trained.code_size, str(data_path))
    with quiet_stdout():
        ntotal = on_disk.merge_from_multiple(lists.data(), lists.size())
    del opened, lists
    trained.replace_invlists(on_disk, True)
    on_disk.this.disown()  # the index owns the lists now
    trained.ntotal = ntotal
    return trained


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence FAISS's C-level ``printf`` of its on-disk lists ("resizing ...", "updating
    ondisk filename ...") so that commands printing results on stdout stay parseable."""
    with _STDOUT_LOCK:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def read_index(path: Path) -> faiss.IndexIVFPQ:
    """Open a saved compressed index; its lists file is looked up beside it."""
    with quiet_stdout():
        return faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)


def search_reranked(
    index: faiss.IndexIVFPQ,
    vectors: np.ndarray,
    unit: np.ndarray,
    k: int,
    nprobe: int,
    depth: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (exact cosine similarities, rows) of unit queries (n, D): ``depth * k`` PQ
    candidates from ``nprobe`` lists, re-ranked with the rows of ``vectors`` (memory-mapped;
    each row read once per batch of queries). Ties go to the lower row; rows that were not
    found are -1 with similarity -inf."""
    params = faiss.SearchParametersIVF()
    params.nprobe = min(int(nprobe), int(index.nlist))
    wanted = int(min(len(vectors), max(k, min(depth * k, MAX_CANDIDATES))))
    sims = np.empty((len(unit), k), dtype=np.float32)
    ids = np.empty((len(unit), k), dtype=np.int64)
    step = max(1, RERANK_BATCH // wanted)
    for lo in range(0, len(unit), step):
        queries = unit[lo : lo + step]
        _, candidates = index.search(queries, wanted, params=params)
        sims[lo : lo + step], ids[lo : lo + step] = _rerank(vectors, queries, candidates, k)
    return sims, ids


def _rerank(
    vectors: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` candidates of each query with the highest exact cosine similarity."""
    candidates = np.sort(candidates, axis=1)  # by row: a stable sort then breaks ties by row
    valid = candidates >= 0
    found = np.unique(candidates[valid])
    exact = (
        normalize(read_rows(vectors, found))
        if len(found)
        else np.zeros((1, queries.shape[1]), "f4")
    )
    rows = exact[np.minimum(np.searchsorted(found, candidates), len(exact) - 1)]  # -1: any row
    scores = np.einsum("qcd,qd->qc", rows, queries)
    scores[~valid] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    sims = np.take_along_axis(scores, top, axis=1)
    ids = np.where(np.isfinite(sims), np.take_along_axis(candidates, top, axis=1), -1)
    return sims.astype(np.float32), ids


def read_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``vectors[rows]`` (``rows`` sorted). From a whole memory-mapped file, read by
    :data:`READ_THREADS` threads with ``os.pread``: the rows of a 10^8-object survey (25.6 GB)
    are mostly not in the page cache, and one page fault after another waits for the disk once
    per row (200 rows at 10^8: 0.56 s; read concurrently: 4.5 ms, see docs/results.md)."""
    whole = _whole_file(vectors)
    if whole is None or len(rows) < 2 * READ_THREADS:
        return np.asarray(vectors[rows])
    path, offset = whole
    size = vectors.shape[1] * vectors.dtype.itemsize
    out = np.empty((len(rows), vectors.shape[1]), dtype=vectors.dtype)
    buffer = memoryview(out).cast("B")
    fd = os.open(path, os.O_RDONLY)

    def read(part: np.ndarray) -> None:
        for i in part:
            start = int(i) * size
            got = os.preadv(fd, [buffer[start : start + size]], offset + int(rows[i]) * size)
            if got != size:
                raise LatentError(f"{path}: short read of row {rows[i]} ({got} of {size} bytes)")

    try:
        list(_readers().map(read, np.array_split(np.arange(len(rows)), READ_THREADS)))
    finally:
        os.close(fd)
    return out


def _whole_file(vectors: np.ndarray) -> tuple[str, int] | None:
    """(file, byte offset of row 0) when ``vectors`` is a whole C-ordered memory-mapped file."""
    path = getattr(vectors, "filename", None)
    if not isinstance(vectors, np.memmap) or path is None or not vectors.flags.c_contiguous:
        return None
    offset = int(vectors.offset)
    try:
        whole = os.path.getsize(path) - offset == vectors.nbytes
    except OSError:
        return None
    base = vectors.base
    starts_at_offset = isinstance(base, mmap.mmap) and _address(vectors) - _address_of(base) == (
        offset % mmap.ALLOCATIONGRANULARITY
    )
    return (str(path), offset) if whole and starts_at_offset else None


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def _address_of(buffer: mmap.mmap) -> int:
    return _address(np.frombuffer(buffer, dtype=np.uint8, count=1))


@functools.cache
def _readers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(READ_THREADS, thread_name_prefix="rerank-read")


def copy_data(source: Path, directory: Path) -> None:
    """Put the lists file ``source`` into ``directory`` (atomic: a temporary copy renamed)."""
    target = Path(directory) / INDEX_DATA_FILE
    if Path(source).resolve() == target.resolve():
        return
    tmp = target.with_name(f".{INDEX_DATA_FILE}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def open_vectors(path: Path, n: int, dim: int) -> np.ndarray:
    """The memory-mapped embeddings the re-ranking reads, checked against the index."""
    if not Path(path).is_file():
        raise LatentError(f"{path}: the compressed index re-ranks with these embeddings; missing")
    vectors: Any = np.load(path, mmap_mode="r")
    if vectors.shape != (n, dim):
        raise LatentError(f"{path}: shape {vectors.shape}, the index holds {n} x {dim}")
    return vectors
