"""Run one job: claim it, call its handler with a progress callback, record the outcome.

The progress callback writes progress (at most once a second, and always the last step) and
reads the job's cancel flag; when set it raises :class:`JobCancelled` (the training loop stops at
once, nothing is registered or activated) and the job is marked cancelled. Any other exception
marks the job failed with its message and traceback tail.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from backend.jobs import table
from backend.jobs.kinds import HANDLERS

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 1.0


class JobCancelled(Exception):
    """Raised inside a job when its cancel flag is seen."""


def _progress_callback(job_id: int) -> Any:
    started = time.monotonic()
    last = {"t": 0.0}

    def progress(info: dict[str, Any]) -> bool:
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
    if not table.claim(job_id):
        status = table.get_job(job_id)["status"]
        log.info("job %s not run: %s", job_id, status)
        return status
    job = table.get_job(job_id)
    log.info("job %s (%s on %s) started", job_id, job["kind"], job["survey"])
    try:
        if job["cancel_requested"]:
            raise JobCancelled(f"job {job_id} cancelled before it started")
        handler = HANDLERS[job["kind"]]
        result = handler(job["survey"], job["params"], _progress_callback(job_id))
    except JobCancelled as exc:
        table.finish(job_id, "cancelled", error=str(exc))
        return "cancelled"
    except BaseException as exc:
        tail = "".join(traceback.format_exception(exc))[-table.LOG_TAIL_CHARS :]
        table.set_progress(job_id, table.get_job(job_id)["progress"], log=tail)
        table.finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
        log.exception("job %s failed", job_id)
        if not isinstance(exc, Exception):
            raise
        return "failed"
    table.finish(job_id, "succeeded", result=result)
    log.info("job %s succeeded: %s", job_id, result)
    return "succeeded"
