"""Run one job: claim it, call its handler with a progress callback, record the outcome.

While it runs the job holds a lease renewed by a heartbeat thread (:mod:`backend.jobs.context`).
The progress callback writes progress (at most once a second, and always the last step) and
reads the job's cancel flag; when set it raises :class:`JobCancelled` (the training loop stops at
once) and the job is marked cancelled. Handlers also check between stages
(:func:`backend.jobs.context.checkpoint`), and every activation checks last, atomically
(:meth:`backend.registry.ModelRegistry.set_active_many`). Any other exception marks the job
failed with its message and traceback tail. The versions a job saved are shown only once it
succeeded (or activated them); those of a failed or cancelled job stay hidden, and their
products are removed (:mod:`backend.jobs.orphans`).
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from backend.jobs import table
from backend.jobs.context import JobCancelled, JobLost, RunningJob, running
from backend.jobs.kinds import HANDLERS
from backend.jobs.orphans import settle_versions

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 1.0

__all__ = ["JobCancelled", "JobLost", "run_job"]


def _progress_callback(job_id: int, job: RunningJob | None = None) -> Any:
    started = time.monotonic()
    last = {"t": 0.0}

    def progress(info: dict[str, Any]) -> bool:
        if job is not None and job.lost.is_set():
            raise JobLost(f"job {job_id}: its worker lost its lease")
        now = time.monotonic()
        step = info.get("step")
        total = info.get("total_steps") or info.get("total")
        final = info.get("phase") == "done" or (step is not None and step == total)
        if not final and now - last["t"] < PROGRESS_INTERVAL_S:
            return True
        last["t"] = now
        elapsed = now - started
        eta = info.get("eta_seconds")
        if eta is None and step and total:
            eta = elapsed / step * max(total - step, 0)
        data = {"step": step, "total": total, "loss": info.get("loss"), "eta": eta,
                "elapsed": elapsed, "phase": info.get("phase")}  # fmt: skip
        line = f"step {step}/{total} loss {info.get('loss')}" if step is not None else None
        if table.set_progress(job_id, data, log=line):
            raise JobCancelled(f"job {job_id} cancelled")
        return True

    return progress


def run_job(job_id: int) -> str:
    """Run job ``job_id`` if it is still queued; returns its final status."""
    holder = table.claim(job_id)
    if holder is None:
        status = table.get_job(job_id)["status"]
        log.info("job %s not run: %s", job_id, status)
        return status
    job = table.get_job(job_id)
    log.info("job %s (%s on %s) started", job_id, job["kind"], job["survey"])
    try:
        with running(job_id, holder) as lease:
            if job["cancel_requested"]:
                raise JobCancelled(f"job {job_id} cancelled before it started")
            handler = HANDLERS[job["kind"]]
            result = handler(job["survey"], job["params"], _progress_callback(job_id, lease))
    except JobCancelled as exc:
        return _settle(job_id, "cancelled", error=str(exc))
    except JobLost as exc:  # finished (or about to be) by whoever found its lease expired
        log.warning("job %s stopped: %s", job_id, exc)
        table.reap_expired(only=job_id)
        return _settle(job_id, None)
    except BaseException as exc:
        tail = "".join(traceback.format_exception(exc))[-table.LOG_TAIL_CHARS :]
        table.set_progress(job_id, table.get_job(job_id)["progress"], log=tail)
        status = _settle(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
        log.exception("job %s failed", job_id)
        if not isinstance(exc, Exception):
            raise
        return status
    status = _settle(job_id, "succeeded", result=result)
    log.info("job %s %s: %s", job_id, status, result)
    return status


def _settle(
    job_id: int, status: str | None, *, result: Any = None, error: str | None = None
) -> str:
    """Record the outcome (unless the job was already finished: then that one stands) and show
    or hide the model versions the job saved accordingly; returns the job's final status."""
    if status is not None:
        table.finish(job_id, status, result=result, error=error)
    final = str(table.get_job(job_id)["status"])
    if final in table.FINISHED:
        settle_versions(job_id, final)
    return final
