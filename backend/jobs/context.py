"""The job running in this thread: its lease (renewed by a heartbeat thread) and its checkpoints.

Handlers call :func:`checkpoint` between stages (``checkpoint("predicting")``): it records the
stage and raises :class:`JobCancelled` when a cancel was asked, :class:`JobLost` when the job is
no longer this worker's (its lease expired and it was failed meanwhile). Outside a job it does
nothing, so the same code serves the command line. Torch-free.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from backend.jobs import table

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a job when its cancel flag is seen."""


class JobLost(Exception):
    """Raised inside a job that is no longer this worker's (its lease expired)."""


@dataclass
class RunningJob:
    job_id: int
    holder: str  # the lease holder's id (table.claim)
    lost: threading.Event = field(default_factory=threading.Event)

    def check(self, stage: str | None = None) -> None:
        """Raise when the job must stop; else record ``stage`` (when given)."""
        if self.lost.is_set():
            raise JobLost(f"job {self.job_id}: its lease was lost")
        state = table.check(self.job_id, self.holder, stage)
        self._raise(state)

    def before_activation(self) -> None:
        """The registry's last call before a switch: the point of no return, or an exception."""
        if self.lost.is_set():
            raise JobLost(f"job {self.job_id}: its lease was lost; nothing activated")
        self._raise(table.begin_activation(self.job_id, self.holder), " before activation")

    def _raise(self, state: str, where: str = "") -> None:
        if state == "cancelled":
            raise JobCancelled(f"job {self.job_id} cancelled{where}")
        if state == "lost":
            self.lost.set()
            raise JobLost(f"job {self.job_id}: its worker lost its lease{where}")


_current: ContextVar[RunningJob | None] = ContextVar("latentsky_running_job", default=None)


def current() -> RunningJob | None:
    return _current.get()


def checkpoint(stage: str | None = None) -> None:
    """Between two stages of a job: stop here if it was cancelled or lost (no-op outside jobs)."""
    job = _current.get()
    if job is not None:
        job.check(stage)


class _Heartbeat(threading.Thread):
    """Renews the job's lease every :func:`table.heartbeat_seconds` until stopped; sets
    ``job.lost`` when the job is no longer this worker's."""

    def __init__(self, job: RunningJob) -> None:
        super().__init__(name=f"lease-job-{job.job_id}", daemon=True)
        self.job = job
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(table.heartbeat_seconds()):
            try:
                if not table.renew(self.job.job_id, self.job.holder):
                    self.job.lost.set()
                    return
            except Exception:  # the database is briefly unreachable: the lease decides
                log.warning("job %s: could not renew its lease", self.job.job_id, exc_info=True)


@contextmanager
def running(job_id: int, holder: str) -> Iterator[RunningJob]:
    """Hold job ``job_id``'s lease (heartbeat thread) and make it this thread's current job;
    versions saved meanwhile belong to it and every activation checks it first."""
    from backend.registry import job_scope

    job = RunningJob(int(job_id), holder)
    heartbeat = _Heartbeat(job)
    heartbeat.start()
    token = _current.set(job)
    try:
        with job_scope(job.job_id, job.before_activation):
            yield job
    finally:
        _current.reset(token)
        heartbeat.stop.set()
        heartbeat.join(timeout=5)
