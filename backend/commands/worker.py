"""``python -m backend worker``: the job worker (training, embedding, scoring jobs).

The job queue arrives with the labelling/retraining issue; until then this command says so
clearly instead of pretending to work.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run the background job worker")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(
        "the LatentSky job worker is not available yet: training and embedding run from the CLI "
        "(python -m backend prepare) until the job queue lands",
        file=sys.stderr,
    )
    return 3
