"""The huey instance: SQLite storage in the data root by default, Redis when ``REDIS_URL`` is
set. The job row in SQL is the truth (outcome included, so huey keeps no results); huey only
carries job ids to the worker."""

from __future__ import annotations

import os

from huey import Huey, RedisHuey, SqliteHuey

from backend.config import get_settings


def make_huey() -> Huey:
    """A huey for this process's settings (``LATENTSKY_HUEY_IMMEDIATE=1``: run in-process)."""
    if os.environ.get("LATENTSKY_HUEY_IMMEDIATE") == "1":
        return Huey("latentsky", immediate=True, results=False)
    if os.environ.get("REDIS_URL"):
        return RedisHuey("latentsky", url=os.environ["REDIS_URL"], results=False)
    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("latentsky", filename=str(home / "huey.db"), timeout=30, results=False)


huey = make_huey()


@huey.task()
def run_job_task(job_id: int) -> str:
    from backend.jobs.runner import run_job

    return run_job(job_id)
