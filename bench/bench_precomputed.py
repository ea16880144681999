"""A large survey with precomputed embeddings: map, index and anomaly scores through the
pipeline (issue 11: "the same code path on a 10M-object survey with precomputed embeddings
(map, index, scores) in <= 30 min").

    nice -n 19 .venv/bin/python bench/bench_precomputed.py --n 1000000 [--scheduler local:2]

What a user with vectors made elsewhere does, step by step, each timed with the peak resident
memory of the command's process tree (its Dask workers included):

1. a survey of ``--n`` objects (catalog with positions; the cutouts are 1-band 4x4 blanks in
   chunks of 65,536: none of the steps below reads pixels), written with ``SurveyWriter``;
2. ``--n`` x ``--dim`` float32 embeddings written chunk by chunk into an ``.npy`` file
   (:func:`backend.latent.synthetic.clustered_embeddings`: a 50-cluster Gaussian mixture);
3. ``python -m backend import embeddings FILE --survey S --activate`` (row order);
4. ``python -m backend products --survey S --ensure --products map,index,scores
   --scheduler SPEC``: the pipeline's plan and graph, the command users run; the seconds of
   each product come from its lineage record.

Prints the figures and merges them into ``bench/results/precomputed.json`` under the size.
The data root is a temporary folder, removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.results_file import merge_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "precomputed.json"
SURVEY = "precomputed"
CHUNK = 1 << 20
TARGET_S = 30 * 60


def _tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_command(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``python -m backend ARGS``: seconds, peak resident MB of its process tree, output."""
    cmd = [sys.executable, "-m", "backend", *args]
    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"    {line.rstrip()}", flush=True)
        lines.append(line.rstrip())
    code = proc.wait()
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - t0
    after = os.times()  # children's CPU: the command and its Dask workers (a local cluster's
    cpu = (after.children_user + after.children_system) - (  # workers are its children)
        before.children_user + before.children_system
    )
    if code != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed with exit status {code}")
    return {
        "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
        "peak_rss_mb": round(peak[0] / 2**20), "output": lines,
    }  # fmt: skip


def make_survey(n: int, seed: int) -> float:
    """``n`` objects with positions and blank 1x4x4 cutouts; returns seconds."""
    import pandas as pd

    from backend.survey import SurveyWriter

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    with SurveyWriter(
        SURVEY, ["x"], (4, 4), "bench", description="bench_precomputed", chunk_objects=65_536
    ) as writer:
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            catalog = pd.DataFrame(
                {
                    "object_id": [f"p{i:09d}" for i in range(lo, hi)],
                    "ra": rng.uniform(0, 360, hi - lo),
                    "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, hi - lo))),
                }
            )
            writer.append(np.zeros((hi - lo, 1, 4, 4), np.float32), catalog)
    return time.perf_counter() - t0


def write_vectors(path: Path, n: int, dim: int, seed: int) -> float:
    """``n`` x ``dim`` float32 clustered vectors into ``path`` (.npy), chunk by chunk."""
    from backend.latent.synthetic import clustered_embeddings

    t0 = time.perf_counter()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    clustered_embeddings(n, dim, seed=seed, out=out)
    out.flush()
    del out
    return time.perf_counter() - t0


def scoring_info(path: Path) -> dict[str, Any]:
    """How the scores were made (their table's ``scoring`` attrs: kNN method, probes, sampled
    recall and score fidelity, stage seconds)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"PANDAS_ATTRS", b"{}")).get("scoring", {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="objects in the survey")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--scheduler", default="local:2", help="--scheduler of the products step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data root")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-precomputed-"))
    os.environ["LATENTSKY_HOME"] = str(home)
    try:
        return run(args, home)
    finally:
        if args.keep:
            print(f"data root kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace, home: Path) -> int:
    """Make the inputs, run the commands, print and record the figures."""
    from backend.latent.source import ANOMALY_FILE
    from backend.pipeline.kinds import Target
    from backend.pipeline.lineage import read_lineage
    from backend.pipeline.storage import INDEX_META_FILE, product_dir
    from backend.registry import ModelRegistry

    env = {**os.environ, "LATENTSKY_HOME": str(home)}
    load = [round(os.getloadavg()[0], 2)]
    survey_s = make_survey(args.n, args.seed)
    print(f"survey of {args.n:,} objects: {survey_s:.0f} s", flush=True)
    vectors = home / "vectors.npy"
    vectors_s = write_vectors(vectors, args.n, args.dim, args.seed)
    print(f"{args.n:,} x {args.dim} vectors written: {vectors_s:.0f} s", flush=True)
    load.append(round(os.getloadavg()[0], 2))
    imported = run_command(
        ["import", "embeddings", str(vectors), "--survey", SURVEY, "--activate"], env
    )
    vectors.unlink()  # the product holds them now
    print(f"import embeddings: {imported['seconds']:.0f} s", flush=True)
    load.append(round(os.getloadavg()[0], 2))
    products = run_command(
        ["products", "--survey", SURVEY, "--ensure", "--products", "map,index,scores",
         "--scheduler", args.scheduler],
        env,
    )  # fmt: skip
    load.append(round(os.getloadavg()[0], 2))
    encoder = ModelRegistry().active(SURVEY, "encoder")
    steps = {}
    for product in ("map", "index", "scores"):
        record = read_lineage(Target(product, SURVEY, "encoder", encoder.version)) or {}
        steps[product] = {"seconds": record.get("seconds"), "params": record.get("params")}
    folder = product_dir(SURVEY, "encoder", encoder.version)
    index_info = json.loads((folder / INDEX_META_FILE).read_text())
    steps["scores"]["scoring"] = scoring_info(folder / ANOMALY_FILE)
    result = {
        "n": args.n,
        "dim": args.dim,
        "scheduler": args.scheduler,
        "survey_seconds": round(survey_s, 1),
        "vectors_seconds": round(vectors_s, 1),
        "import": {k: v for k, v in imported.items() if k != "output"},
        "products": {k: v for k, v in products.items() if k != "output"},
        "steps": steps,
        "index": {k: v for k, v in index_info.items() if not isinstance(v, (list, dict))},
        "pipeline_seconds": round(imported["seconds"] + products["seconds"], 1),
        "target_seconds_at_10M": TARGET_S,
        "load_average": load,
        "cores": len(os.sched_getaffinity(0)),
        "note": "shared machine: other sessions ran at the same time; see the load averages",
    }
    print(
        f"{args.n:,} objects: import {imported['seconds']:.0f} s (peak {imported['peak_rss_mb']} "
        f"MB), products {products['seconds']:.0f} s, {products['cpu_seconds']:.0f} CPU-s "
        f"(peak {products['peak_rss_mb']} MB): "
        + ", ".join(f"{k} {v['seconds']} s" for k, v in steps.items())
        + f"; load {load}"
    )
    merge_results(RESULTS, f"n={args.n}", result)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
