"""Python API for the app and the CLI: submit, list and cancel jobs."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pandas as pd

from backend.jobs import table
from backend.jobs.kinds import JOB_KINDS
from backend.jobs.table import JobError
from backend.survey import Survey, SurveyError

log = logging.getLogger(__name__)


def submit_job(
    kind: str, survey: str | None, params: dict[str, Any] | None = None, user: str = "anonymous"
) -> int:
    """Record a queued job and hand its id to the worker queue; returns the job id."""
    if kind not in JOB_KINDS:
        raise JobError(f"unknown job kind {kind!r} (kinds: {', '.join(JOB_KINDS)})")
    if kind != "sleep":
        try:
            Survey.open(survey or "")
        except SurveyError as exc:
            raise JobError(str(exc)) from None
    job_id = table.insert_job(kind, survey, dict(params or {}), user)
    from backend.jobs.queue import run_job_task

    run_job_task(job_id)  # immediate mode runs it here; else the worker picks it up
    return job_id


def list_jobs(survey: str | None = None, limit: int = 50) -> pd.DataFrame:
    return table.list_jobs(survey, limit)


def cancel_job(job_id: int) -> str:
    """Cancel a queued job now, or flag a running one (it stops at its next checkpoint and
    activates nothing; one whose worker is lost is cancelled now). Returns its status, or
    "activating" when it is past the point of no return (the cancel is refused)."""
    table.get_job(job_id)
    return table.request_cancel(job_id)


def get_job(job_id: int) -> dict[str, Any]:
    return table.get_job(job_id)


def recover(requeue: bool = True) -> dict[str, list[int]]:
    """Worker start: finish jobs whose worker's lease expired; re-send queued ids (a duplicate
    is a no-op). Jobs of a worker that died moments ago are finished by :func:`reap_forever`
    once their lease runs out."""
    failed = table.reap_expired()
    queued = table.queued_ids() if requeue else []
    if queued:
        from backend.jobs.queue import run_job_task

        for job_id in queued:
            run_job_task(job_id)
    return {"failed": failed, "requeued": queued}


def reap_forever(stop: threading.Event) -> None:
    """A worker's watch: every heartbeat, finish the jobs whose lease expired (a worker killed
    and restarted at once leaves its job running until its lease runs out)."""
    while not stop.wait(table.heartbeat_seconds()):
        try:
            table.reap_expired()
        except Exception:  # the database is briefly unreachable: try again next beat
            log.warning("could not check the job leases", exc_info=True)
