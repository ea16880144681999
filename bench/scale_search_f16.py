"""Similarity search on float16 embeddings at 10^8 objects (issue 12), in three stages.

At 10^8 x 128 the float32 embeddings (51 GB) do not fit this machine's disk; stored as float16
they are 25.6 GB. Each stage runs in its own process and writes its figures beside the data:

- ``gen``: N clustered embeddings (:func:`backend.latent.synthetic.clustered_chunks`, block
  ``i`` seeded by ``(0, i)``) written as float16 into ``DIR/embeddings.npy`` by ``--workers``
  processes; in the same pass, the exact top-10 of ``--queries`` held-out queries (a block of
  the held-out seed stream, never rows of the survey) against every row **in float32** before
  the cast: the reference is exact float32 search (``DIR/queries.npy``, ``DIR/exact.npy``);
- ``build``: the compressed index built from the float16 memory map as the pipeline builds it
  (:meth:`SimilarityIndex.build`, chunks upcast to float32, tuned, saved into ``DIR``);
- ``search``: a fresh process opens the saved index as the app does and runs the held-out
  queries one at a time (k=10): a first, cold pass (recall@10 vs the float32 reference and each
  query's time) then a timed pass after 5 warm-up queries; peak RSS (anonymous vs file pages);
- ``reads``: one query's re-ranking reads alone (random rows by page faults and by
  :func:`backend.latent.compressed.read_rows`), measurable without the index.

    nice -n 19 .venv/bin/python bench/scale_search_f16.py --points 100000000 --dir D --stage gen

``--stage report`` merges the stages' figures into ``bench/results/scale_search.json`` under
``points_<N>_float16``. Times are wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.atomic import atomic_write, atomic_write_json
from bench.measure import latencies_ms, peak_rss_mb
from bench.results_file import merge_results
from bench.scale_search import RESULTS, MemorySampler, rss_parts_mb, say

CHUNK = 262_144
K = 10
_worker: dict[str, Any] = {}


def cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def stage_record(directory: Path, stage: str, figures: dict[str, Any]) -> None:
    """Write one stage's figures to ``DIR/<stage>.json`` (with the load average)."""
    figures["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    atomic_write_json(directory / f"{stage}.json", figures)
    say(json.dumps(figures, indent=2))


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to exactly ``path`` (no ``.npy`` added to a temporary name)."""
    with open(path, "wb") as fh:
        np.save(fh, array)


# -- gen -----------------------------------------------------------------------------------------
def _init_worker(path: str, queries: np.ndarray, chunk: int) -> None:
    from backend.latent.synthetic import cluster_model

    _worker["chunk"] = chunk  # the parent's (a spawned worker imports this module afresh)
    _worker["out"] = np.load(path, mmap_mode="r+")
    _worker["queries"] = queries
    _worker["model"] = cluster_model(_worker["out"].shape[1], 50, seed=0)


def _write_block(number: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Make block ``number``, store it as float16, return the exact float32 top-k of the
    queries within it (similarities, rows)."""
    from backend.latent.synthetic import clustered_block
    from backend.latent.vectors import knn_inner_product, normalize

    out = _worker["out"]
    lo = number * _worker["chunk"]
    hi = min(lo + _worker["chunk"], len(out))
    block, _ = clustered_block(_worker["model"], hi - lo, 0, number)
    out[lo:hi] = block  # cast to float16
    sims, rows = knn_inner_product(_worker["queries"], normalize(block), K)
    return number, sims, rows + lo


def generate(n: int, dim: int, n_queries: int, directory: Path, workers: int) -> dict[str, Any]:
    """Float16 embeddings, held-out queries and their exact float32 neighbours into ``DIR``."""
    from backend.latent.synthetic import cluster_model, clustered_block
    from backend.latent.vectors import normalize

    t0, c0 = time.perf_counter(), cpu_s()
    held, _ = clustered_block(cluster_model(dim, 50, seed=0), n_queries, 0, 0, held_out=True)
    queries = normalize(held)
    path = directory / "embeddings.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    del out
    best_s = np.full((n_queries, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((n_queries, 0), dtype=np.int64)
    blocks = range((n + CHUNK - 1) // CHUNK)
    ctx = get_context("spawn")  # fork from a threaded process (pytest, torch) can deadlock
    with ctx.Pool(workers, _init_worker, (str(path), queries, CHUNK)) as pool:
        for done, (_, s, i) in enumerate(pool.imap_unordered(_write_block, blocks), 1):
            best_s = np.concatenate([best_s, s], axis=1)
            best_i = np.concatenate([best_i, i], axis=1)
            top = np.lexsort((best_i, -best_s), axis=1)[:, :K]  # ties: the lower row
            best_s = np.take_along_axis(best_s, top, axis=1)
            best_i = np.take_along_axis(best_i, top, axis=1)
            if done % 20 == 0 or done == len(blocks):
                say(f"gen: {done}/{len(blocks)} blocks, {time.perf_counter() - t0:.0f} s")
    for name, array in (("queries.npy", queries), ("exact.npy", best_i)):
        atomic_write(directory / name, lambda tmp, a=array: save_npy(tmp, a))
    return {
        "n": n, "dim": dim, "dtype": "float16", "n_queries": n_queries, "workers": workers,
        "gen_s": round(time.perf_counter() - t0, 1), "gen_cpu_s": round(cpu_s() - c0, 1),
        "embeddings_gb": round(path.stat().st_size / 1e9, 2),
        "parent_peak_rss_mb": round(peak_rss_mb(), 1),
    }  # fmt: skip


# -- build ---------------------------------------------------------------------------------------
def build(directory: Path) -> dict[str, Any]:
    """The compressed index of ``DIR/embeddings.npy`` (float16), built and saved into ``DIR``."""
    from backend.latent.search import SimilarityIndex

    embeddings = np.load(directory / "embeddings.npy", mmap_mode="r")
    t0, c0 = time.perf_counter(), cpu_s()
    with MemorySampler() as memory:
        built = SimilarityIndex.build(embeddings, kind="ivfpq", progress=True, workdir=directory)
        built_s = time.perf_counter() - t0
        built.save(directory)
    total = time.perf_counter() - t0
    info = built.info
    return {
        "n": len(embeddings), "dtype": str(embeddings.dtype),
        "build_s": round(float(info["build_s"]), 1),
        "tune_s": round(built_s - float(info["build_s"]), 1), "build_tune_save_s": round(total, 1),
        "cpu_s": round(cpu_s() - c0, 1), "build_memory": memory.figures(),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "params": {k: info[k] for k in ("nlist", "nprobe", "pq_m", "pq_nbits", "rerank_depth",
                                        "tuned_recall_at_10") if k in info},
        "files_mb": {p.name: round(p.stat().st_size / 2**20, 1) for p in directory.iterdir()
                     if p.is_file()},
    }  # fmt: skip


# -- search --------------------------------------------------------------------------------------
def search(directory: Path) -> dict[str, Any]:
    """Held-out queries on the saved index, opened as the app opens it, in a fresh process."""
    from backend.latent.search import SimilarityIndex, recall_at_k

    queries = np.load(directory / "queries.npy")
    exact = np.load(directory / "exact.npy")
    before = rss_parts_mb()
    with MemorySampler() as memory:
        t0 = time.perf_counter()
        embeddings = np.load(directory / "embeddings.npy", mmap_mode="r")
        index = SimilarityIndex.load(directory, embeddings)
        open_s = time.perf_counter() - t0
        opened = rss_parts_mb()
        cold = np.empty(len(queries))
        found = np.empty((len(queries), K), dtype=np.int64)
        for i in range(len(queries)):
            t1 = time.perf_counter()
            found[i] = index.search_unit(queries[i : i + 1], K)[1][0]
            cold[i] = (time.perf_counter() - t1) * 1e3
        warm = latencies_ms(lambda i: index.search_unit(queries[i % len(queries)][None], K),
                            len(queries))  # fmt: skip

    def pct(ms: np.ndarray) -> dict[str, float]:
        return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95)} | {
            "max_ms": round(float(ms.max()), 2)
        }

    return {
        "n": len(index), "n_queries": len(queries), "k": K,
        "recall_at_10_vs_exact_float32": round(recall_at_k(found, exact), 4),
        "first_pass": pct(cold), "timed_pass": pct(warm), "open_s": round(open_s, 3),
        "rss_opened_anon_mb": round(opened["anon"] - before["anon"], 1),
        "search_memory": memory.figures(), "peak_rss_mb": round(peak_rss_mb(), 1),
        "params": {k: index.info[k] for k in ("nlist", "nprobe", "rerank_depth") if k in index.info},
    }  # fmt: skip


# -- reads ---------------------------------------------------------------------------------------
def reads(directory: Path, n_queries: int, rows: int = 200) -> dict[str, Any]:
    """What one query's re-ranking reads costs: ``rows`` random rows of the memory map
    gathered by page faults (``vectors[rows]``) and by :func:`compressed.read_rows`
    (concurrent ``pread``), ``n_queries`` times each, on different rows (cold where the file
    is larger than the page cache)."""
    from backend.latent.compressed import READ_THREADS, read_rows

    embeddings = np.load(directory / "embeddings.npy", mmap_mode="r")
    rng = np.random.default_rng(5)
    out: dict[str, Any] = {"n": len(embeddings), "rows_per_query": rows, "threads": READ_THREADS}
    for name, read in (("page_faults", lambda r: np.asarray(embeddings[r])),
                       ("read_rows", lambda r: read_rows(embeddings, r))):  # fmt: skip
        picks = [
            np.unique(rng.choice(len(embeddings), rows, replace=False)) for _ in range(n_queries)
        ]
        ms = latencies_ms(lambda i, f=read, p=picks: f(p[i]), n_queries, 0)
        out[name] = {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, required=True)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dir", type=Path, required=True, help="folder for data and index")
    parser.add_argument(
        "--stage", choices=("gen", "build", "search", "reads", "report"), required=True
    )
    parser.add_argument("--workers", type=int, default=2, help="processes generating (gen)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    load = [round(x, 2) for x in os.getloadavg()]
    if args.stage == "gen":
        figures = generate(args.points, args.dim, args.queries, args.dir, args.workers)
    elif args.stage == "build":
        figures = build(args.dir)
    elif args.stage == "search":
        figures = search(args.dir)
    elif args.stage == "reads":
        figures = reads(args.dir, args.queries)
    else:
        stages = {s: json.loads((args.dir / f"{s}.json").read_text())
                  for s in ("gen", "build", "search", "reads") if (args.dir / f"{s}.json").is_file()}  # fmt: skip
        merge_results(args.json, f"points_{args.points}_float16", stages)
        say(f"merged {sorted(stages)} into {args.json}")
        return 0
    figures["load_avg_start"] = load
    stage_record(args.dir, args.stage, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
