"""Speed of the GalSim demo survey simulator on this machine (galaxies per second).

    .venv/bin/python bench/bench_simulate.py [--n 2000] [--workers 1 2]

Times ``iter_simulated`` end to end (worker start-up included) for each worker count, then a
full ``simulate_survey`` into a temporary store (rendering + zarr/parquet writing). Wall-clock
rates depend on whatever else runs on the machine; rates per CPU-second (this process and its
workers) do not, and times the core count they estimate an idle machine. Prints the figures
and writes ``bench/results/simulate.json``. Target: >= 100 galaxies/s on 2 cores, so the
10,000-object demo survey takes well under two minutes of `make run`'s ten.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.simulate.config import SIMULATOR_VERSION
from backend.simulate.survey import iter_simulated, simulate_survey

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.json"


def _cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the worker processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(what: str, n: int, workers: int, run: Callable[[], None]) -> dict:
    """Wall and CPU time of ``run``; the CPU time is robust to other load on the machine."""
    load = os.getloadavg()[0]
    cpu, wall = _cpu_seconds(), time.perf_counter()
    run()
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    print(
        f"{what:16s} n={n} workers={workers}: {wall:6.1f} s wall = {n / wall:6.1f} galaxies/s; "
        f"{n / cpu:6.1f} galaxies per CPU-second (load average before: {load:.1f})"
    )
    return {
        "what": what,
        "workers": workers,
        "n": n,
        "wall_seconds": round(wall, 2),
        "per_second": round(n / wall, 1),
        "cpu_seconds": round(cpu, 2),
        "per_cpu_second": round(n / cpu, 1),
        "load_average_before": round(load, 2),
    }


def render(n: int, workers: int, seed: int) -> None:
    assert sum(len(images) for images, _ in iter_simulated(n, seed, workers)) == n


def write_survey(n: int, workers: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        simulate_survey("bench", n, seed, workers=workers, progress=False, root=Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    runs = [
        measure("render", args.n, w, partial(render, args.n, w, args.seed)) for w in args.workers
    ]
    top = max(args.workers)
    runs.append(
        measure("simulate_survey", args.n, top, partial(write_survey, args.n, top, args.seed))
    )
    cores = min(top, os.cpu_count() or 1)
    idle_rate = runs[-1]["per_cpu_second"] * cores
    print(
        f"idle-machine estimate with {cores} cores: {idle_rate:.0f} galaxies/s, "
        f"10,000 objects in {10_000 / idle_rate:.0f} s"
    )
    result = {
        "benchmark": "simulate",
        "simulator_version": SIMULATOR_VERSION,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "runs": runs,
        "idle_estimate_per_second": round(idle_rate, 1),
        "idle_estimate_demo_10k_seconds": round(10_000 / idle_rate, 1),
        "target_per_second_2_workers": 100,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
