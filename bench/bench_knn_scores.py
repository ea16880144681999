"""kNN anomaly scores of every object: one index search per object against the search by cells
(:mod:`backend.latent.cellknn`), on the same synthetic embeddings (issue 11).

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python bench/bench_knn_scores.py --n 300000

For ``--n`` clustered 128-d vectors (:func:`backend.latent.synthetic.clustered_embeddings`):

- ``index``: what scores used before for every survey, what they still use up to
  ``CELL_KNN_ABOVE`` objects: an HNSW index (M=32, efConstruction 40) searched with
  efSearch 96 (:data:`backend.latent.scorers.KNN_EF_SEARCH`), plus the index build;
- ``cells``: :func:`backend.latent.cellknn.cell_knn` (k-means leaves, probes tuned on a sample).

Each is run in this process on one thread (``sync``) and timed in CPU seconds, so the figures
are per core and depend little on the machine's load. Quality against exact search on
``--queries`` sampled rows: recall@10 of the neighbours, and for the kNN score (mean distance
to the 10 nearest) its Spearman correlation with the exact score and its median / 95th
percentile relative error. Merged into ``bench/results/knn_scores.json`` under the size
(``n=N``, or ``n=N_cells`` with ``--skip-index``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np
from scipy.stats import spearmanr

from bench.results_file import merge_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "knn_scores.json"
K = 10


def quality(ids: np.ndarray, sims: np.ndarray, exact_i: np.ndarray, exact_s: np.ndarray) -> dict:
    """Recall@K and kNN-score fidelity of (ids, sims) (K + 1 columns, self included)."""
    recall = np.mean([len(set(a[1:]) & set(b[1:])) / K for a, b in zip(ids, exact_i, strict=True)])

    def score(s: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(2 - 2 * s[:, 1:], 0, None)).mean(axis=1)

    got, want = score(sims), score(exact_s)
    rel = got / want - 1
    return {
        "recall_at_10": round(float(recall), 4),
        "score_spearman": round(float(spearmanr(got, want)[0]), 4),
        "score_rel_error_median": round(float(np.median(rel)), 5),
        "score_rel_error_p95": round(float(np.quantile(rel, 0.95)), 5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--queries", type=int, default=2000, help="rows checked against exact")
    parser.add_argument("--skip-index", action="store_true", help="only the search by cells")
    args = parser.parse_args()
    from backend.latent.cellknn import cell_knn
    from backend.latent.scorers import KNN_EF_SEARCH
    from backend.latent.search import SimilarityIndex
    from backend.latent.synthetic import clustered_embeddings
    from backend.latent.vectors import normalize

    faiss.omp_set_num_threads(1)
    load = [round(os.getloadavg()[0], 2)]
    x, _ = clustered_embeddings(args.n, 128, seed=0)
    unit = normalize(x)
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(args.n, size=min(args.n, args.queries), replace=False))
    exact_s, exact_i = faiss.knn(unit[rows], unit, K + 1, faiss.METRIC_INNER_PRODUCT)
    if args.skip_index:
        del unit  # the cells read ``x``; no second copy held
    result: dict[str, Any] = {"n": args.n, "dim": 128, "k": K, "queries": len(rows)}

    t0 = time.process_time()
    sims, ids, info = cell_knn(x, K + 1, scheduler="sync")
    cells_cpu = time.process_time() - t0
    result["cells"] = {
        "cpu_seconds": round(cells_cpu, 1),
        "us_per_object": round(cells_cpu / args.n * 1e6, 1),
        **quality(ids[rows], sims[rows], exact_i, exact_s),
        "tuned": {k: v for k, v in info.items() if k != "timings"},
        "stage_seconds": info["timings"],
    }
    print(f"cells: {result['cells']}", flush=True)
    if not args.skip_index:
        t0 = time.process_time()
        index = SimilarityIndex.build(unit, kind="hnsw", scheduler="sync")
        build_cpu = time.process_time() - t0
        t0 = time.process_time()
        sims, ids = index.search_unit(unit, K + 1, ef_search=KNN_EF_SEARCH)
        search_cpu = time.process_time() - t0
        result["index"] = {
            "kind": "hnsw",
            "ef_search": KNN_EF_SEARCH,
            "build_cpu_seconds": round(build_cpu, 1),
            "search_cpu_seconds": round(search_cpu, 1),
            "us_per_object": round(search_cpu / args.n * 1e6, 1),
            **quality(ids[rows], sims[rows], exact_i, exact_s),
        }
        print(f"index: {result['index']}", flush=True)
    load.append(round(os.getloadavg()[0], 2))
    result["load_average"] = load
    result["note"] = "one thread, CPU seconds; shared 2-core machine (see the load averages)"
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    merge_results(RESULTS, f"n={args.n}" + ("_cells" if args.skip_index else ""), result)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
