"""The ``jobs`` table (SQLAlchemy Core, same metadata and engine as the label store).

One row per job: what (kind, survey, params), who, its status (queued, running, succeeded,
failed, cancelled), progress (step, total, loss, eta), a log tail, the result (model version) or
the error. Status changes are guarded updates (``WHERE status = ...``), so two workers never run
the same job and a finished job is never reopened.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.feedback import create_tables, engine_for, metadata

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
LOG_TAIL_CHARS = 4000

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("survey", sa.String(64), nullable=True),
    sa.Column("params", sa.Text, nullable=False, default="{}"),
    sa.Column("status", sa.String(16), nullable=False, default="queued"),
    sa.Column("progress", sa.Text, nullable=False, default="{}"),
    sa.Column("log_tail", sa.Text, nullable=False, default=""),
    sa.Column("requested_by", sa.String(256), nullable=False, default="anonymous"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("worker", sa.String(300), nullable=True),  # host:pid of the running worker
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result", sa.Text, nullable=True),  # JSON: model version, paths...
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_jobs_survey_status", "survey", "status"),
)


class JobError(ValueError):
    """A job that cannot be submitted, found or changed (the message says why)."""


def _now() -> datetime:
    return datetime.now(UTC)


_ready: set[str] = set()


def _engine(engine: Engine | None) -> Engine:
    engine = engine or engine_for()
    key = str(engine.url)
    if key not in _ready:  # databases created before this table existed
        create_tables(engine, metadata, [jobs])
        _ready.add(key)
    return engine


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def insert_job(
    kind: str, survey: str | None, params: dict[str, Any], user: str, engine: Engine | None = None
) -> int:
    row = {
        "kind": kind, "survey": survey, "params": json.dumps(params, default=str),
        "status": "queued", "progress": "{}", "log_tail": "", "requested_by": user,
        "cancel_requested": False, "created": _now(),
    }  # fmt: skip
    with _engine(engine).begin() as conn:
        return int(conn.execute(jobs.insert().values(**row)).inserted_primary_key[0])


def get_job(job_id: int, engine: Engine | None = None) -> dict[str, Any]:
    with _engine(engine).connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == int(job_id))).mappings().first()
    if row is None:
        raise JobError(f"no job {job_id}")
    job = dict(row)
    for key in ("params", "progress", "result"):
        job[key] = json.loads(job[key]) if job[key] else ({} if key != "result" else None)
    return job


def list_jobs(
    survey: str | None = None, limit: int = 50, engine: Engine | None = None
) -> pd.DataFrame:
    """Latest jobs first (all columns; JSON columns decoded)."""
    query = sa.select(jobs).order_by(jobs.c.id.desc()).limit(int(limit))
    if survey is not None:
        query = query.where(jobs.c.survey == survey)
    with _engine(engine).connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings().all()]
    for row in rows:
        for key in ("params", "progress", "result"):
            row[key] = json.loads(row[key]) if row[key] else None
    return pd.DataFrame(rows, columns=[c.name for c in jobs.columns])


def _transition(
    job_id: int, from_: tuple[str, ...], values: dict[str, Any], engine: Engine | None
) -> bool:
    with _engine(engine).begin() as conn:
        done = conn.execute(
            jobs.update().where(jobs.c.id == int(job_id), jobs.c.status.in_(from_)).values(**values)
        )
        return done.rowcount == 1


def claim(job_id: int, engine: Engine | None = None) -> bool:
    """queued → running by this process; False when another worker has it or it was cancelled."""
    values = {"status": "running", "started": _now(), "worker": worker_id()}
    return _transition(job_id, ("queued",), values, engine)


def finish(
    job_id: int, status: str, *, result: Any = None, error: str | None = None,
    engine: Engine | None = None,
) -> bool:  # fmt: skip
    values: dict[str, Any] = {"status": status, "finished": _now(), "error": error}
    if result is not None:
        values["result"] = json.dumps(result, default=str)
    return _transition(job_id, ("queued", "running"), values, engine)


def set_progress(
    job_id: int, progress: dict[str, Any], log: str | None = None, engine: Engine | None = None
) -> bool:
    """Store progress (and append ``log`` to the tail); returns whether cancel was requested."""
    engine = _engine(engine)
    with engine.begin() as conn:
        values: dict[str, Any] = {"progress": json.dumps(progress, default=str)}
        if log:
            tail = conn.execute(sa.select(jobs.c.log_tail).where(jobs.c.id == job_id)).scalar()
            values["log_tail"] = ((tail or "") + log.rstrip() + "\n")[-LOG_TAIL_CHARS:]
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
        flag = conn.execute(sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id))
        return bool(flag.scalar())


def request_cancel(job_id: int, engine: Engine | None = None) -> str:
    """Flag a job for cancellation; a queued job is cancelled at once. Returns its status."""
    engine = _engine(engine)
    with engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(cancel_requested=True))
    finish_queued = _transition(
        job_id, ("queued",), {"status": "cancelled", "finished": _now()}, engine
    )
    return "cancelled" if finish_queued else get_job(job_id, engine)["status"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphans(engine: Engine | None = None) -> list[int]:
    """Mark failed the jobs left ``running`` by a dead worker on this host; returns their ids."""
    host = socket.gethostname()
    with _engine(engine).connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.worker).where(jobs.c.status == "running")
        ).all()
    failed = []
    for job_id, worker in rows:
        w_host, _, pid = (worker or "").rpartition(":")
        if (
            w_host != host
            or not pid.isdigit()
            or (_pid_alive(int(pid)) and int(pid) != os.getpid())
        ):
            continue
        error = f"worker {worker} died while running this job; nothing was activated"
        if finish(job_id, "failed", error=error, engine=engine):
            failed.append(int(job_id))
    return failed


def queued_ids(engine: Engine | None = None) -> list[int]:
    with _engine(engine).connect() as conn:
        query = sa.select(jobs.c.id).where(jobs.c.status == "queued").order_by(jobs.c.id)
        return [int(r[0]) for r in conn.execute(query).all()]
