"""``python -m backend simulate``: render the GalSim demo survey into the survey store.

``simulate_survey`` is importable from here too (loaded on first use, so building the command
line does not import GalSim).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from backend.cli import add_scheduler_option
from backend.simulate.config import ANOMALY_KINDS, CLASSES


def __getattr__(name: str) -> Any:
    if name == "simulate_survey":
        from backend.simulate.survey import simulate_survey

        return simulate_survey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a multi-band galaxy survey with GalSim (classes, anomalies, truth)",
        description="Render a g,r,i,z survey of galaxies (spiral, barred spiral, elliptical, "
        "lenticular, edge-on, irregular, merger) with ~1% injected anomalies and ground-truth "
        "catalog columns. Reproducible from --seed whatever --workers or --scheduler is.",
    )
    p.add_argument("--survey", default="demo", help="survey name (default: demo)")
    p.add_argument("--n", type=int, default=10_000, help="number of objects (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="render with N local processes, without Dask (overrides --scheduler)",
    )
    p.add_argument("--stamp", type=int, default=64, help="stamp size in pixels (default: 64)")
    p.add_argument(
        "--anomaly-fraction",
        type=float,
        default=0.01,
        help="share of objects with an injected anomaly (default: 0.01)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing survey")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scheduler_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.errors import UserError
    from backend.simulate.survey import simulate_survey
    from backend.survey import Survey

    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.stamp < 16 or args.stamp % 2:
        raise UserError("--stamp must be an even number of pixels, at least 16")
    if not 0.0 <= args.anomaly_fraction <= 1.0:
        raise UserError("--anomaly-fraction must be between 0 and 1")
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.seed < 0:
        raise UserError("--seed must be non-negative")
    start = time.perf_counter()
    path = simulate_survey(
        args.survey, args.n, args.seed, workers=args.workers, overwrite=args.overwrite,
        progress=not args.no_progress, stamp=args.stamp, anomaly_fraction=args.anomaly_fraction,
        scheduler=None if args.workers else getattr(args, "scheduler", None),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    survey = Survey(path)
    catalog = survey.catalog
    print(
        f"simulated {len(survey):,} objects into {path} in {seconds:.1f} s "
        f"({len(survey) / seconds:.0f} objects/s)"
    )
    counts = catalog["true_class"].value_counts()
    print("classes:   " + ", ".join(f"{c} {int(counts.get(c, 0))}" for c in CLASSES))
    kinds = catalog["anomaly_type"].value_counts()
    print("anomalies: " + ", ".join(f"{k} {int(kinds.get(k, 0))}" for k in ANOMALY_KINDS))
    print(
        f"redshift:  median {catalog['redshift'].median():.3f}, "
        f"mag_r median {catalog['mag_r'].median():.2f}"
    )
    return 0
