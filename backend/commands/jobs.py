"""``python -m backend jobs [--survey NAME] [--cancel ID]``: list (or cancel) jobs."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list background jobs (latest first) or cancel one")
    p.add_argument("--survey", help="only this survey's jobs")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cancel", type=int, metavar="ID", help="cancel job ID")
    p.set_defaults(func=run)


def _progress(progress: dict | None) -> str:
    if not progress or progress.get("step") is None:
        return ""
    text = f"{progress['step']}/{progress.get('total') or '?'}"
    if progress.get("eta") is not None:
        text += f" eta {progress['eta']:.0f}s"
    return text


def run(args: argparse.Namespace) -> int:
    from backend.jobs.api import cancel_job, list_jobs

    if args.cancel is not None:
        print(f"job {args.cancel}: {cancel_job(args.cancel)}")
        return 0
    table = list_jobs(args.survey, args.limit)
    if table.empty:
        print("no jobs")
        return 0
    print(f"{'id':>5} {'kind':16} {'survey':12} {'status':10} {'progress':16} result / error")
    for job in table.itertuples():
        result = job.result if isinstance(job.result, dict) else {}
        outcome = job.error if isinstance(job.error, str) else result.get("version", "")
        print(
            f"{job.id:>5} {job.kind:16} {job.survey or '-':12} {job.status:10} "
            f"{_progress(job.progress):16} {outcome or ''}"
        )
    return 0
