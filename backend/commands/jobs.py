"""``python -m backend jobs [--survey NAME] [--cancel ID]``: list (or cancel) jobs.

Listing first finishes the jobs whose worker was lost (lease expired), so no dead job shows as
running. ``--cancel`` on a job already activating its new version is refused and says so.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list background jobs (latest first) or cancel one")
    p.add_argument("--survey", help="only this survey's jobs")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cancel", type=int, metavar="ID", help="cancel job ID")
    p.set_defaults(func=run)


def _progress(progress: dict | None, stage: object = None) -> str:
    text = str(stage) if isinstance(stage, str) and stage else ""
    if not progress or progress.get("step") is None:
        return text
    text = (text + " " if text else "") + f"{progress['step']}/{progress.get('total') or '?'}"
    if progress.get("eta") is not None:
        text += f" eta {progress['eta']:.0f}s"
    return text


def run(args: argparse.Namespace) -> int:
    from backend.jobs.api import cancel_job, list_jobs

    if args.cancel is not None:
        status = cancel_job(args.cancel)
        if status == "activating":
            print(f"job {args.cancel}: activating; too late to cancel (the switch completes)")
        else:
            print(f"job {args.cancel}: {status}")
        return 0
    table = list_jobs(args.survey, args.limit)
    if table.empty:
        print("no jobs")
        return 0
    print(f"{'id':>5} {'kind':16} {'survey':12} {'status':10} {'progress':24} result / error")
    for job in table.itertuples():
        result = job.result if isinstance(job.result, dict) else {}
        outcome = job.error if isinstance(job.error, str) else result.get("version", "")
        print(
            f"{job.id:>5} {job.kind:16} {job.survey or '-':12} {job.status:10} "
            f"{_progress(job.progress, job.stage if job.status == 'running' else None):24} "
            f"{outcome or ''}"
        )
    return 0
