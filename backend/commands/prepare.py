"""``python -m backend prepare``: make the demo survey (and later its models) ready to explore.

Each step checks whether its product exists and only does the missing work, so a second run
finishes in seconds.
"""

from __future__ import annotations

import argparse
import time

from backend.survey import list_surveys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="simulate the demo survey (and train its models) when missing"
    )
    p.add_argument("--survey", default="demo", help="survey to prepare (default: demo)")
    p.add_argument("--n", type=int, default=10_000, help="objects to simulate (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for tests and smoke runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    n = min(args.n, 400) if args.quick else args.n
    if any(m.name == args.survey for m in list_surveys()):
        print(f"survey {args.survey!r}: present")
    else:
        from backend.simulate.cli import simulate_survey

        print(f"survey {args.survey!r}: simulating {n:,} galaxies with GalSim")
        simulate_survey(args.survey, n=n, seed=args.seed)
    print(f"prepare: done in {time.perf_counter() - started:.1f} s")
    return 0
