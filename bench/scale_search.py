"""Similarity search and paged lists at scale (issue 12): the compressed index and first pages.

Functions for ``bench/bench_scale.py`` (which builds a synthetic survey through the pipeline):

- :func:`measure_search` ``(home, survey, n_queries, k)``: p50/p95 latency of one query at a
  time, recall@10 against exact search on a sample of queries, the index's build time and
  parameters, RSS after opening the index and the process's peak RSS;
- :func:`measure_lists` ``(home, survey, n)``: time to the first page of the anomaly list (when
  the survey has scores) and of the labelling queue.

Standalone, without a survey (embeddings generated chunk by chunk into a memory-mapped file,
never all in memory; the index built and saved as the pipeline does):

    nice -n 19 .venv/bin/python bench/scale_search.py --points 1000000 [--json F] [--keep DIR]

prints the figures and merges them into ``bench/results/scale_search.json`` under
``points_<N>_<kind>`` (``--kind ivfpq`` forces the compressed index below its threshold);
``--lists-only`` measures only the first pages of N-row rankings (key ``lists_<N>``).
Timings are wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import latencies_ms, peak_rss_mb
from bench.results_file import merge_results

RESULTS = Path(__file__).resolve().parent / "results" / "scale_search.json"


def say(*parts: object) -> None:
    print(*parts, flush=True)


def rss_parts_mb() -> dict[str, float]:
    """Resident memory now, split: anonymous (the heap: what the process holds) and file pages
    (memory-mapped files such as the embeddings and index lists: page cache, reclaimable)."""
    parts = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("RssAnon:", "RssFile:")):
                parts[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"anon": parts.get("RssAnon", float("nan")), "file": parts.get("RssFile", float("nan"))}


class MemorySampler:
    """Peak anonymous and file-backed RSS while the block runs (sampled every 0.2 s)."""

    def __init__(self) -> None:
        self.peak = {"anon": 0.0, "file": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.2)

    def _sample(self) -> None:
        for key, value in rss_parts_mb().items():
            self.peak[key] = max(self.peak[key], value)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def figures(self) -> dict[str, float]:
        return {f"peak_rss_{k}_mb": round(v, 1) for k, v in self.peak.items()}


@contextmanager
def data_root(home: Path) -> Iterator[None]:
    """``LATENTSKY_HOME`` set to ``home`` for the block."""
    old = os.environ.get("LATENTSKY_HOME")
    os.environ["LATENTSKY_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LATENTSKY_HOME", None)
        else:
            os.environ["LATENTSKY_HOME"] = old


def timed_ms(fn: Callable[[int], object], n: int, warmup: int = 5) -> dict[str, float]:
    """p50 / p95 / max wall time (ms) of ``fn(i)`` over ``n`` calls after ``warmup`` calls."""
    ms = latencies_ms(fn, n, warmup)
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def measure_index(index: Any, embeddings: np.ndarray, n_queries: int, k: int) -> dict[str, Any]:
    """Latency and recall@10 of a :class:`~backend.latent.search.SimilarityIndex` whose rows
    are ``embeddings``, on ``n_queries`` rows drawn with a fixed seed."""
    from backend.latent.search import _exact_neighbours, recall_at_k
    from backend.latent.vectors import normalize

    rng = np.random.default_rng(12)
    n = len(embeddings)
    rows = np.sort(rng.choice(n, size=min(n, n_queries), replace=False))
    queries = normalize(embeddings[rows])
    t0 = time.perf_counter()
    exact = _exact_neighbours(queries, embeddings, 10)
    exact_s = time.perf_counter() - t0
    found = np.stack([index.search_unit(queries[i : i + 1], 10)[1][0] for i in range(len(rows))])
    latency = timed_ms(lambda i: index.search_unit(queries[i % len(rows)][None], k), len(rows))
    return {
        "n": n, "kind": index.kind, "k": k, "n_queries": len(rows),
        "recall_at_10": round(recall_at_k(found, exact), 4), **latency,
        "exact_scan_s": round(exact_s, 2),
        "params": {
            key: index.info[key]
            for key in ("nlist", "nprobe", "ef_search", "pq_m", "pq_nbits", "rerank_depth",
                        "tuned_recall_at_10")
            if key in index.info
        },
        "build_s": round(float(index.info.get("build_s", float("nan"))), 1),
    }  # fmt: skip


def measure_search(home: Path, survey: str, n_queries: int = 200, k: int = 10) -> dict[str, Any]:
    """Similarity search on ``survey``'s saved index in the data root ``home`` (made by the
    pipeline: ``python -m backend index``): latency, recall@10 vs exact, build time, memory."""
    from backend.latent.service import clear_cache, latent_services
    from backend.pipeline.kinds import Target
    from backend.pipeline.lineage import read_lineage

    with data_root(Path(home)):
        clear_cache()
        before = rss_parts_mb()
        with MemorySampler() as memory:
            t0 = time.perf_counter()
            services = latent_services(survey)
            search = services.search()
            open_s = time.perf_counter() - t0
            opened = rss_parts_mb()
            figures = measure_index(search.index, services.embeddings, n_queries, k)
        record = read_lineage(Target("index", survey, "encoder", services.version)) or {}
        clear_cache()
    figures.update(
        open_s=round(open_s, 3), rss_opened_anon_mb=round(opened["anon"] - before["anon"], 1),
        search_memory=memory.figures(), pipeline_index_s=record.get("seconds"),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )  # fmt: skip
    return figures


def measure_lists(home: Path, survey: str, n: int = 48) -> dict[str, Any]:
    """Time to the first ``n`` rows of the anomaly list (scores read from disk, then the page)
    and of the labelling queue of a new user (its first batch ranked)."""
    from backend.active.queue import LabelQueue
    from backend.latent.anomaly import AnomalyRanker
    from backend.latent.errors import MissingProductError
    from backend.latent.service import clear_cache, latent_services
    from backend.latent.source import ANOMALY_FILE

    out: dict[str, Any] = {"n": n}
    with data_root(Path(home)):
        clear_cache()
        services = latent_services(survey)
        try:
            t0 = time.perf_counter()
            ranker = AnomalyRanker.load(services.directory / ANOMALY_FILE)
            out["anomaly_load_s"] = round(time.perf_counter() - t0, 3)
            t1 = time.perf_counter()
            page = ranker.listing().page(0, n)
            out["anomaly_first_page_s"] = round(time.perf_counter() - t1, 3)
            out["anomaly_total_s"] = round(time.perf_counter() - t0, 3)
            assert len(page) == min(n, len(ranker))
        except MissingProductError as exc:  # a survey without scores: the queue still counts
            out["anomaly_skipped"] = str(exc)
        t0 = time.perf_counter()
        queue = LabelQueue(survey, f"bench-{os.getpid()}", batch_size=n)
        first = queue.next(n)
        out["label_queue_first_page_s"] = round(time.perf_counter() - t0, 3)
        out["label_queue_rows"] = len(first)
        clear_cache()
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


# -- standalone: synthetic embeddings, no survey -------------------------------------------------
def synthetic_embeddings(n: int, dim: int, directory: Path) -> np.ndarray:
    """Clustered embeddings written chunk by chunk into ``directory/embeddings.npy``."""
    from backend.latent.synthetic import clustered_embeddings

    path = directory / "embeddings.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    clustered_embeddings(n, dim, 50, seed=0, out=out)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def synthetic_lists(n: int, page: int, seed: int = 0) -> dict[str, Any]:
    """First page of an anomaly list and of an acquisition ranking over ``n`` rows of arrays
    (the scores of a survey of ``n`` objects), by partial selection; and the full sort it
    replaces, for comparison."""
    from backend.active.acquisition import acquisition_scores
    from backend.latent.paging import RankedList, sort_key, top_order

    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"index": np.arange(n), "anomaly": rng.random(n, dtype=np.float32)})
    t0 = time.perf_counter()
    RankedList(table, "anomaly").page(0, page)
    first_page = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.argsort(-table["anomaly"].to_numpy(), kind="stable")[:page]
    full_sort = time.perf_counter() - t0
    probs = rng.dirichlet([1.0, 1.0, 1.0], n).astype(np.float32)
    predictions = pd.DataFrame({"p_a": probs[:, 0], "p_b": probs[:, 1], "p_c": probs[:, 2]})
    t0 = time.perf_counter()
    scores = acquisition_scores(predictions, "margin")
    top_order(sort_key(scores), 10 * page)
    queue_s = time.perf_counter() - t0
    return {
        "n": n, "page": page, "anomaly_first_page_s": round(first_page, 3),
        "anomaly_full_sort_s": round(full_sort, 3),
        "acquisition_pool_s": round(queue_s, 3),
    }  # fmt: skip


def run_points(
    n: int, dim: int, n_queries: int, keep: Path | None, kind: str = "auto"
) -> dict[str, Any]:
    """Embeddings of ``n`` points, the index of ``kind`` (``auto``: compressed above the
    threshold), saved and reopened as the app opens it, then measured."""
    from backend.latent.search import SimilarityIndex

    directory = keep or Path(tempfile.mkdtemp(prefix="scale-search-", dir=os.environ.get("TMPDIR")))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        embeddings = synthetic_embeddings(n, dim, directory)
        data_s = time.perf_counter() - t0
        say(f"embeddings: {n:,} x {dim} in {data_s:.1f} s (peak RSS {peak_rss_mb():.0f} MiB)")
        t0 = time.perf_counter()
        with MemorySampler() as build_memory:
            built = SimilarityIndex.build(embeddings, kind=kind, progress=True, workdir=directory)
            built.save(directory)
        build_s = time.perf_counter() - t0
        say(f"index: {built!r} {built.info} in {build_s:.1f} s ({build_memory.figures()})")
        del built
        before = rss_parts_mb()
        with MemorySampler() as search_memory:
            index = SimilarityIndex.load(directory, embeddings)
            figures = measure_index(index, embeddings, n_queries, 10)
        after = rss_parts_mb()
        figures.update(
            data_s=round(data_s, 1), build_and_save_s=round(build_s, 1),
            build_memory=build_memory.figures(), search_memory=search_memory.figures(),
            rss_opened_anon_mb=round(after["anon"] - before["anon"], 1),
            files_mb={p.name: round(p.stat().st_size / 2**20, 1) for p in directory.iterdir()
                      if p.is_file()},
        )  # fmt: skip
        figures["lists"] = synthetic_lists(n, 48)
        figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return figures
    finally:
        if keep is None:
            shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, required=True, help="number of embeddings")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file to merge into")
    parser.add_argument("--keep", type=Path, help="folder for the embeddings and index (kept)")
    parser.add_argument("--kind", default="auto", help="index kind (default: auto by size)")
    parser.add_argument(
        "--lists-only", action="store_true", help="only the first pages of N-row rankings"
    )
    args = parser.parse_args(argv)
    if args.lists_only:
        figures, key = synthetic_lists(args.points, 48), f"lists_{args.points}"
    else:
        figures = run_points(args.points, args.dim, args.queries, args.keep, args.kind)
        key = f"points_{args.points}_{figures['kind']}"
    figures["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    say(json.dumps(figures, indent=2))
    merge_results(args.json, key, figures)
    say(f"merged into {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
