"""Latent services at survey scale on synthetic clustered embeddings (targets P3, P4, P7).

    .venv/bin/python bench/bench_latent.py --part map        # P3: 1M map, quality vs full UMAP
    .venv/bin/python bench/bench_latent.py --part search     # P4: 1M x 128-d (HNSW)
    .venv/bin/python bench/bench_latent.py --part search10m  # P4: 10M x 128-d (IVF)
    .venv/bin/python bench/bench_latent.py --part rerank     # P7: re-ranking 1M after feedback

Embeddings: ``backend.latent.synthetic.clustered_embeddings`` (128-d Gaussian mixture, 50
clusters of different sizes and widths, low-rank + isotropic covariances). Each part prints its
figures and merges them into ``bench/results/latent.json``; each part stays under ~10 minutes
on 2 cores. Timings are wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.latent.synthetic import clustered_embeddings
from backend.latent.vectors import cpu_threads, normalize
from bench.measure import latencies_ms

RESULTS = Path(__file__).resolve().parent / "results" / "latent.json"


def say(*parts: object) -> None:
    print(*parts, flush=True)


def latencies(fn: Callable[[int], object], n: int) -> dict[str, float]:
    """Median and p95 wall time in ms of ``fn(i)`` over ``n`` calls (after 5 warm-up calls)."""
    ms = latencies_ms(fn, n, warmup=5)
    return {
        "median_ms": round(float(np.median(ms)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


def data(n: int, seed: int = 0, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    t0 = time.perf_counter()
    x, labels = clustered_embeddings(n, 128, 50, seed=seed, out=out)
    say(f"data: {n:,} x 128 in {time.perf_counter() - t0:.1f} s")
    return x, labels


# -- P3 -------------------------------------------------------------------------------------------
def bench_map(n: int, landmarks: int, subset: int) -> dict[str, Any]:
    from backend.latent.projection import LatentMap, MapParams, fit_umap
    from backend.latent.quality import (
        high_dim_neighbours,
        knn_preservation,
        map_neighbours,
        trustworthiness,
    )

    x, _ = data(n)
    t0 = time.perf_counter()
    latent_map = LatentMap.fit(x, MapParams(n_landmarks=landmarks), progress=True)
    total = time.perf_counter() - t0
    timings = {k: round(v, 1) for k, v in latent_map.info["timings"].items()}
    say(f"map of {n:,}: {total:.1f} s  {timings}")

    rng = np.random.default_rng(1)
    fresh = clustered_embeddings(1000, 128, 50, seed=0)[0] + rng.normal(0, 0.05, (1000, 128))
    place = latencies(lambda i: latent_map.place(fresh[i % 1000]), 1000)
    say(f"place one new object: {place}")

    rows = np.sort(rng.choice(n, size=min(subset, n), replace=False))
    t0 = time.perf_counter()
    full = fit_umap(normalize(x[rows]), MapParams())
    full_s = time.perf_counter() - t0
    say(f"full umap-learn on {len(rows):,}: {full_s:.1f} s")
    high = high_dim_neighbours(x[rows], 10)
    ours_xy = np.asarray(latent_map.coords[rows])
    pres_full = knn_preservation(high, map_neighbours(full, 10))
    pres_ours = knn_preservation(high, map_neighbours(ours_xy, 10))
    t_rows = rng.choice(len(rows), size=min(10_000, len(rows)), replace=False)
    trust_full = trustworthiness(x[rows][t_rows], full[t_rows], 10)
    trust_ours = trustworthiness(x[rows][t_rows], ours_xy[t_rows], 10)
    say(
        f"kNN preservation (k=10) on {len(rows):,}: full UMAP {pres_full:.4f}, ours "
        f"{pres_ours:.4f}, ratio {pres_ours / pres_full:.3f}; trustworthiness (10k) full "
        f"{trust_full:.4f}, ours {trust_ours:.4f}"
    )
    # umap-learn alone, extrapolated: UMAP cost grows ~ n^1.1-1.2 (NN-descent + epochs)
    full_1m_estimate = full_s * (n / len(rows)) ** 1.15
    return {
        "n": n,
        "n_landmarks": landmarks,
        "total_s": round(total, 1),
        "timings_s": timings,
        "target_s": 300,
        "place_new": place,
        "quality_subset": len(rows),
        "umap_full_subset_s": round(full_s, 1),
        "umap_full_extrapolated_s": round(full_1m_estimate),
        "knn_preservation_full": round(pres_full, 4),
        "knn_preservation_ours": round(pres_ours, 4),
        "knn_preservation_ratio": round(pres_ours / pres_full, 3),
        "trustworthiness_full": round(trust_full, 4),
        "trustworthiness_ours": round(trust_ours, 4),
    }


# -- P4 -------------------------------------------------------------------------------------------
def bench_search(n: int, n_queries: int, kind: str, memmap_dir: Path | None) -> dict[str, Any]:
    from backend.latent.search import SimilarityIndex, _exact_neighbours, recall_at_k

    if memmap_dir is not None:
        path = memmap_dir / "emb.npy"
        out = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float32, shape=(n + n_queries, 128)
        )
        x_all, _ = data(n + n_queries, out=out)
    else:
        x_all, _ = data(n + n_queries)
    x, queries = x_all[:n], np.asarray(x_all[n:])  # held-out queries: not in the index

    t0 = time.perf_counter()
    index = SimilarityIndex.build(x, kind=kind, progress=True)
    build = time.perf_counter() - t0
    param = "ef_search" if index.kind == "hnsw" else "nprobe"
    say(f"{index.kind} index of {n:,}: {build:.1f} s (tuned {param}={index.info.get(param)})")

    t0 = time.perf_counter()
    exact = _exact_neighbours(normalize(queries), x, 10)
    say(f"exact neighbours of {n_queries} queries: {time.perf_counter() - t0:.1f} s")

    def one(i: int) -> object:
        return index.search(queries[i % n_queries], 10)

    lat = latencies(one, n_queries)
    found = index.search(queries, 10)[1]
    recall = recall_at_k(found, exact)
    say(f"single queries k=10: {lat}, recall@10 {recall:.4f}")
    result: dict[str, Any] = {
        "n": n,
        "kind": index.kind,
        "build_s": round(build, 1),
        param: index.info.get(param),
        "queries": n_queries,
        "latency_k10": lat,
        "recall_at_10": round(recall, 4),
    }
    sweep = []  # how the tuned parameter trades latency for recall
    tuned = index.info[param]
    for value in sorted({max(4, tuned // 2), tuned, tuned * 2}):
        index.info[param] = value
        lat_v = latencies(one, min(300, n_queries))
        rec_v = recall_at_k(index.search(queries, 10)[1], exact)
        sweep.append({param: value, "recall_at_10": round(rec_v, 4), **lat_v})
        say(f"  {param}={value}: recall@10 {rec_v:.4f}, {lat_v}")
    index.info[param] = tuned
    result["sweep"] = sweep
    lat_k1000 = latencies(lambda i: index.search(queries[i % n_queries], 1000), 50)
    result["latency_k1000"] = lat_k1000
    say(f"single queries k=1000: {lat_k1000}")
    if kind != "ivf":
        exact_index = SimilarityIndex.build(x[:100_000], kind="flat")
        result["flat_100k_latency_k10"] = latencies(
            lambda i: exact_index.search(queries[i % n_queries], 10), 300
        )
        say(f"exact (flat) at 100k: {result['flat_100k_latency_k10']}")
        del exact_index
        flat = SimilarityIndex.build(x, kind="flat")
        result["flat_full_latency_k10"] = latencies(
            lambda i: flat.search(queries[i % n_queries], 10), 200
        )
        say(f"exact (flat) at {n:,}: {result['flat_full_latency_k10']}")
    return result


# -- P7 -------------------------------------------------------------------------------------------
def bench_rerank(n: int, with_knn: bool) -> dict[str, Any]:
    from backend.db import engine_for
    from backend.feedback import latest_interest, record_interest
    from backend.latent.anomaly import AnomalyRanker, RerankParams

    x, labels = data(n)
    scorers = ("iforest", "knn") if with_knn else ("iforest",)
    t0 = time.perf_counter()
    ranker = AnomalyRanker.fit(
        x, scorers=scorers, object_ids=np.arange(n).astype(str), progress=True
    )
    scoring = time.perf_counter() - t0
    say(f"anomaly scores ({', '.join(scorers)}) of {n:,}: {scoring:.1f} s")
    t0 = time.perf_counter()
    ranker.unit()
    unit_s = time.perf_counter() - t0
    say(f"unit embeddings for re-ranking (once per process): {unit_s:.1f} s")

    rng = np.random.default_rng(0)
    result: dict[str, Any] = {
        "n": n,
        "scorers": list(scorers),
        "scoring_s": round(scoring, 1),
        "unit_once_s": round(unit_s, 1),
        "target_s": 10,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_for(f"sqlite:///{tmp}/bench.db")
        for n_labels in (50, 500):
            picked = rng.choice(n, n_labels, replace=False)
            for i in picked:
                score = 5 if labels[i] in (0, 1) else int(rng.integers(0, 3))
                record_interest("bench", str(i), score, "bench-user", engine=engine)
            for method, regressor in (
                ("blend", "knn"),
                ("blend", "forest"),
                ("astronomaly", "knn"),
            ):
                t0 = time.perf_counter()
                interest = latest_interest("bench", engine=engine)
                table = ranker.rerank(interest, RerankParams(method=method, regressor=regressor))
                seconds = time.perf_counter() - t0
                liked = np.isin(labels[table["index"].to_numpy()[:1000]], (0, 1)).mean()
                run = {
                    "labels": len(interest),
                    "method": method,
                    "regressor": regressor,
                    "seconds": round(seconds, 2),
                    "liked_share_top1000": round(float(liked), 3),
                }
                result["runs"].append(run)
                say(f"re-rank {n:,}: {run}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("map", "search", "search10m", "rerank"), required=True)
    parser.add_argument(
        "--n", type=int, default=None, help="objects (default 1M; 10M for search10m)"
    )
    parser.add_argument("--landmarks", type=int, default=20_000)
    parser.add_argument("--subset", type=int, default=50_000, help="P3 quality subset")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--with-knn", action="store_true", help="P7: also the kNN scorer")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.perf_counter()
    if args.part == "map":
        result = bench_map(args.n or 1_000_000, args.landmarks, args.subset)
    elif args.part == "search":
        result = bench_search(args.n or 1_000_000, args.queries, "auto", None)
    elif args.part == "search10m":
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            result = bench_search(args.n or 10_000_000, min(args.queries, 300), "ivf", Path(tmp))
    else:
        result = bench_rerank(args.n or 1_000_000, args.with_knn)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["machine"] = {
        "cpu_threads": cpu_threads(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(args.out.read_text()) if args.out.is_file() else {}
    merged[args.part] = result
    args.out.write_text(json.dumps(merged, indent=2) + "\n")
    say(f"written to {args.out} ({result['wall_s']} s)")


if __name__ == "__main__":
    main()
