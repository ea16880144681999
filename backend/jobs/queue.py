"""The huey instance: SQLite storage in the data root by default, Redis when ``REDIS_URL`` is
set. The job row in SQL is the truth (outcome included, so huey keeps no results); huey only
carries job ids to the worker.

Nothing is built at import: :func:`get_huey` makes the process's huey on first use (for the
settings of that moment) and registers the one task on it; :func:`run_job_task` enqueues a job
id (runs it in-process in immediate mode).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from backend.config import get_settings, huey_immediate, redis_url

if TYPE_CHECKING:
    from huey import Huey

_huey: Huey | None = None
_task: Any = None  # the huey task wrapper of :func:`_run_job_task` on ``_huey``
_lock = threading.Lock()


def make_huey() -> Huey:
    """A huey for this process's settings (``LATENTSKY_HUEY_IMMEDIATE=1``: run in-process)."""
    from huey import Huey, RedisHuey, SqliteHuey

    if huey_immediate():
        return Huey("latentsky", immediate=True, results=False)
    if url := redis_url():
        return RedisHuey("latentsky", url=url, results=False)
    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("latentsky", filename=str(home / "huey.db"), timeout=30, results=False)


def get_huey() -> Huey:
    """The process's huey, built (and its task registered) on the first call."""
    global _huey, _task
    with _lock:
        if _huey is None:
            huey = make_huey()
            # the name huey files it under (module + name) is the one queued messages carry
            _task = huey.task(name="run_job_task")(_run_job_task)
            _huey = huey
        return _huey


def run_job_task(job_id: int) -> Any:
    """Hand ``job_id`` to the worker queue (immediate mode: run it here, now)."""
    get_huey()
    return _task(job_id)


def _run_job_task(job_id: int) -> str:
    from backend.jobs.runner import run_job

    return run_job(job_id)
