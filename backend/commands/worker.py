"""``python -m backend worker``: the job worker (a huey consumer).

Each running job holds a lease the worker renews (``LATENTSKY_JOB_LEASE_S``, default 20 s,
renewed every ``LATENTSKY_JOB_HEARTBEAT_S``, default 5 s). On start, and every heartbeat after,
the worker finishes the jobs whose lease expired (failed, "worker lost"; nothing of theirs is
activated or listed); on start it also re-sends the ids of queued jobs (a duplicate is a no-op).
Then it consumes the queue: SQLite storage in the data root by default, Redis when
``REDIS_URL`` is set.
"""

from __future__ import annotations

import argparse
import logging
import threading


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run the background job worker (training, embedding...)")
    p.add_argument("--workers", type=int, default=1, help="jobs run at the same time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.jobs.api import reap_forever, recover
    from backend.jobs.queue import get_huey

    log = logging.getLogger("backend.worker")
    recovered = recover()
    if recovered["failed"]:
        log.warning("finished (their worker was lost): jobs %s", recovered["failed"])
    if recovered["requeued"]:
        log.info("re-sent queued jobs %s", recovered["requeued"])
    consumer = get_huey().create_consumer(
        workers=max(1, args.workers), worker_type="thread", initial_delay=0.1, max_delay=1.0
    )
    stop = threading.Event()
    watch = threading.Thread(target=reap_forever, args=(stop,), name="job-leases", daemon=True)
    watch.start()
    try:
        consumer.run()
    finally:
        stop.set()
    return 0
