"""``python -m backend worker``: the job worker (a huey consumer).

On start it marks failed the jobs a dead worker left ``running`` (nothing of theirs was
activated) and re-sends the ids of queued jobs (a duplicate is a no-op), then consumes the queue:
SQLite storage in the data root by default, Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import argparse
import logging


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run the background job worker (training, embedding...)")
    p.add_argument("--workers", type=int, default=1, help="jobs run at the same time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.jobs.api import recover
    from backend.jobs.queue import huey

    log = logging.getLogger("backend.worker")
    recovered = recover()
    if recovered["failed"]:
        log.warning("marked failed (their worker died): jobs %s", recovered["failed"])
    if recovered["requeued"]:
        log.info("re-sent queued jobs %s", recovered["requeued"])
    consumer = huey.create_consumer(
        workers=max(1, args.workers), worker_type="thread", initial_delay=0.1, max_delay=1.0
    )
    consumer.run()
    return 0
