"""Run the benchmarks one after another (``make bench``); each prints figures and writes JSON.

    .venv/bin/python bench/run_all.py            # the quick set (minutes)
    .venv/bin/python bench/run_all.py --full     # plus the 1M/10M latent-service benches (~1 h)

Benches that need the prepared demo survey (``make prepare``) say so and are skipped when it is
missing. Results land in ``bench/results/*.json``; the figures are summarised in
``docs/results.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = [
    ["bench_simulate.py"],
    ["bench_inference.py"],
    ["bench_anomaly_s3.py", "--survey", "demo"],
]
FULL = [
    ["bench_latent.py", "--part", "map"],
    ["bench_latent.py", "--part", "search"],
    ["bench_latent.py", "--part", "search10m"],
    ["bench_latent.py", "--part", "rerank"],
]
OPTIONAL = ["bench_models_eval.py", "bench_active_s1.py", "bench_active_p6.py", "bench_app.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also the 1M/10M benches")
    args = parser.parse_args()
    plan = QUICK + [[name] for name in OPTIONAL if (HERE / name).is_file()]
    if args.full:
        plan += FULL
    failures = []
    for cmd in plan:
        print(f"\n=== {' '.join(cmd)} ===", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]], cwd=HERE.parent)
        print(f"=== {cmd[0]}: exit {code} in {time.perf_counter() - t0:.0f} s ===", flush=True)
        if code:
            failures.append(" ".join(cmd))
    if failures:
        print("\nfailed or skipped: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
