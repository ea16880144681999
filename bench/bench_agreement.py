"""Agreement table cost as the team grows (issue 10: ~90 s of CPU with 116 labellers before).

    .venv/bin/python bench/bench_agreement.py                 # 116 and 1,000 labellers
    .venv/bin/python bench/bench_agreement.py --reference     # + the pairwise code it replaced (116)

Synthetic team: each labeller labels a random share (2-40%) of a pool of objects with a personal
error rate, 8 classes; labels per object therefore vary like a real campaign's. Times the report
from the answers (``backend.labels.agreement.agreement_report``): first call (computed) and the
second (cached); prints the figures and writes ``bench/results/agreement.json``. Wall-clock
timings on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.labels import agreement

RESULTS = Path(__file__).resolve().parent / "results" / "agreement.json"
CLASSES = 8


def team(labellers: int, objects: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, CLASSES, objects)
    parts = []
    for u in range(labellers):
        seen = np.flatnonzero(rng.random(objects) < rng.uniform(0.02, 0.4))
        wrong = rng.random(len(seen)) < rng.uniform(0.05, 0.4)
        values = np.where(wrong, rng.integers(0, CLASSES, len(seen)), truth[seen])
        parts.append(pd.DataFrame({
            "object_id": [f"obj-{i:06d}" for i in seen], "user": f"labeller-{u:04d}",
            "value": [f"class{v}" for v in values],
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def reference(answers: pd.DataFrame) -> None:
    """The pairwise implementation this replaced (pivot, then sklearn per pair)."""
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    grid = answers.pivot(index="user", columns="object_id", values="value")
    grid = grid.loc[:, grid.notna().sum() >= 2]
    classes = sorted(answers["value"].unique())
    codes = grid.apply(lambda col: col.map({c: i for i, c in enumerate(classes)}))
    krippendorff.alpha(reliability_data=codes.to_numpy(float), level_of_measurement="nominal")
    for a, b in combinations(grid.index, 2):
        both = grid.loc[a].notna() & grid.loc[b].notna()
        if both.sum() >= agreement.MIN_COMMON:
            cohen_kappa_score(grid.loc[a, both].to_numpy(), grid.loc[b, both].to_numpy())


def measure(labellers: int, objects: int, with_reference: bool) -> dict[str, Any]:
    answers = team(labellers, objects)
    agreement._CACHE.clear()
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = agreement.agreement_report(answers)
    first_s, first_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    t0 = time.perf_counter()
    agreement.agreement_report(answers)
    cached_s = time.perf_counter() - t0
    row = {
        "labellers": labellers, "objects": objects, "labels": len(answers),
        "pairs_reported": len(report["pairs"]), "alpha": report["krippendorff_alpha"],
        "first_call_s": round(first_s, 3), "first_call_cpu_s": round(first_cpu, 3),
        "cached_call_s": round(cached_s, 4),
    }  # fmt: skip
    if with_reference:
        t0 = time.perf_counter()
        reference(answers)
        row["reference_s"] = round(time.perf_counter() - t0, 2)
    print(
        f"{labellers:5d} labellers, {len(answers):8,d} labels, {len(report['pairs']):7,d} pairs: "
        f"{first_s:6.2f} s ({first_cpu:.2f} s CPU), cached {cached_s * 1000:.1f} ms"
        + (f"; pairwise reference {row['reference_s']:.1f} s" if with_reference else ""),
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000, help="object pool (default 5000)")
    parser.add_argument("--labellers", default="116,1000", help="team sizes (default 116,1000)")
    parser.add_argument("--reference", action="store_true", help="time the old code at 116")
    args = parser.parse_args()
    rows = [
        measure(int(n), args.objects, args.reference and int(n) <= 116)
        for n in args.labellers.split(",")
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bench": "agreement", "target": "1,000 labellers <= 2 s", "rows": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "omp_threads": os.environ.get("OMP_NUM_THREADS")},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
