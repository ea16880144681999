"""``python -m backend submit KIND --survey NAME [--param key=value ...]``: enqueue a job."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from backend.jobs.kinds import JOB_KINDS

    p = sub.add_parser("submit", help="queue a background job for the worker")
    p.add_argument("kind", choices=JOB_KINDS)
    p.add_argument("--survey", help="survey name (all kinds except sleep)")
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="job parameter (VALUE parsed as JSON when it can be), repeatable",
    )  # fmt: skip
    p.add_argument("--user", default=os.environ.get("USER", "cli"))
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> dict[str, Any]:
    from backend.errors import UserError

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param {item!r}: use KEY=VALUE")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def run(args: argparse.Namespace) -> int:
    from backend.jobs.api import get_job, submit_job

    job_id = submit_job(args.kind, args.survey, parse_params(args.param), args.user)
    status = get_job(job_id)["status"]
    print(
        f"job {job_id} {status} ({args.kind} on {args.survey or '-'}); see python -m backend jobs"
    )
    return 0
