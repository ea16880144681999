"""The ``jobs`` table (SQLAlchemy Core, same metadata and engine as the label store).

One row per job: what (kind, survey, params), who, its status (queued, running, succeeded,
failed, cancelled), progress (step, total, loss, eta), a log tail, the result (model version) or
the error. Status changes are guarded updates (``WHERE status = ...``), so two workers never run
the same job and a finished job is never reopened.

A running job is held by a lease: the worker that claimed it (``worker``: host, pid and a token
unique to that claim) renews ``lease_expires`` every :func:`heartbeat_seconds`; a job whose lease
has expired is finished by :func:`reap_expired` (failed, "worker lost"; cancelled when a cancel
was asked), whoever calls it: the worker every heartbeat, ``jobs``/the app when listing, cancel,
the retrain scheduler. A PID says nothing once the process is gone (a zombie or a reused PID
still answers). ``stage`` is the job's current step; ``activating`` is the point of no return:
it is set, in one guarded update, only while the job is running, held by its worker with a live
lease and not asked to cancel; a cancel after that point is refused (the switch completes).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend import config
from backend.db import create_tables, engine_for, metadata
from backend.errors import UserError

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
LOG_TAIL_CHARS = 4000
ACTIVATING = "activating"  # the stage after which a job can no longer be cancelled

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
    sa.Column("worker", sa.String(300), nullable=True),  # host:pid:token of the lease holder
    sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True),
    sa.Column("stage", sa.String(32), nullable=True),  # current step; "activating": no cancel
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result", sa.Text, nullable=True),  # JSON: model version, paths...
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_jobs_survey_status", "survey", "status"),
)


class JobError(UserError, ValueError):
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


def lease_seconds() -> float:
    """How long a running job's lease lasts without renewal (``LATENTSKY_JOB_LEASE_S``)."""
    return config.job_lease_seconds()


def heartbeat_seconds() -> float:
    """How often a worker renews its leases (``LATENTSKY_JOB_HEARTBEAT_S``)."""
    return config.job_heartbeat_seconds()


def worker_id() -> str:
    """Who holds a lease: host, pid and a token of its own (a reused PID is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _lease_until() -> datetime:
    return _now() + timedelta(seconds=lease_seconds())


def _expired() -> sa.ColumnElement[bool]:
    return sa.or_(jobs.c.lease_expires.is_(None), jobs.c.lease_expires < _now())


def _not_activating() -> sa.ColumnElement[bool]:
    return sa.or_(jobs.c.stage.is_(None), jobs.c.stage != ACTIVATING)


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
    """Latest jobs first (all columns; JSON columns decoded); jobs whose lease expired are
    finished first (:func:`reap_expired`), so the list never shows a dead job running."""
    reap_expired(engine)
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


def claim(job_id: int, engine: Engine | None = None) -> str | None:
    """queued → running with a fresh lease; returns the lease holder's id (renew and check with
    it), None when another worker has the job or it was cancelled."""
    holder = worker_id()
    values = {"status": "running", "started": _now(), "worker": holder,
              "lease_expires": _lease_until(), "stage": None}  # fmt: skip
    return holder if _transition(job_id, ("queued",), values, engine) else None


def renew(job_id: int, holder: str, engine: Engine | None = None) -> bool:
    """Extend the lease of a running job held by ``holder``; False when it is no longer its
    (finished, or found expired and failed meanwhile): the job must stop."""
    with _engine(engine).begin() as conn:
        done = conn.execute(
            jobs.update()
            .where(jobs.c.id == int(job_id), jobs.c.status == "running", jobs.c.worker == holder)
            .values(lease_expires=_lease_until())
        )
        return done.rowcount == 1


def check(job_id: int, holder: str, stage: str | None = None, engine: Engine | None = None) -> str:
    """A running job's checkpoint: "ok", "cancelled" (asked to) or "lost" (no longer held by
    ``holder``); records ``stage`` when it is "ok"."""
    engine = _engine(engine)
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(jobs.c.status, jobs.c.worker, jobs.c.cancel_requested).where(
                jobs.c.id == int(job_id)
            )
        ).first()
        if row is None or row.status != "running" or row.worker != holder:
            return "lost"
        if row.cancel_requested:
            return "cancelled"
        if stage is not None:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == int(job_id), jobs.c.worker == holder, _not_activating())
                .values(stage=str(stage)[:32])
            )
        return "ok"


def begin_activation(job_id: int, holder: str, engine: Engine | None = None) -> str:
    """The point of no return, in one guarded update: the job becomes ``activating`` only if it
    is running, held by ``holder`` with a live lease, and not asked to cancel. Returns "ok",
    "cancelled" or "lost"; after "ok" a cancel is refused (:func:`request_cancel`)."""
    engine = _engine(engine)
    with engine.begin() as conn:
        done = conn.execute(
            jobs.update()
            .where(
                jobs.c.id == int(job_id),
                jobs.c.status == "running",
                jobs.c.worker == holder,
                jobs.c.lease_expires > _now(),
                jobs.c.cancel_requested == sa.false(),
            )
            .values(stage=ACTIVATING)
        )
        if done.rowcount == 1:
            return "ok"
    job = get_job(job_id, engine)
    owned = job["status"] == "running" and job["worker"] == holder
    return "cancelled" if owned and job["cancel_requested"] else "lost"


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
    """Flag a job for cancellation and return its status: a queued job is cancelled at once, a
    running one stops at its next checkpoint (and never activates), one whose worker is lost
    (lease expired) is cancelled now. A job already ``activating`` cannot be cancelled: the
    flag is not set and "activating" is returned (the switch completes)."""
    engine = _engine(engine)
    with engine.begin() as conn:
        conn.execute(
            jobs.update()
            .where(
                jobs.c.id == int(job_id),
                jobs.c.status.in_(("queued", "running")),
                _not_activating(),
            )
            .values(cancel_requested=True)
        )
    if _transition(job_id, ("queued",), {"status": "cancelled", "finished": _now()}, engine):
        return "cancelled"
    reap_expired(engine, only=job_id)
    job = get_job(job_id, engine)
    if job["status"] == "running" and job["stage"] == ACTIVATING:
        return ACTIVATING
    return str(job["status"])


def reap_expired(engine: Engine | None = None, only: int | None = None) -> list[int]:
    """Finish the running jobs whose lease expired (their worker is gone): failed ("worker
    lost"), or cancelled when a cancel was asked; their model versions are marked failed and
    hidden. A job lost while ``activating`` whose versions did become active is succeeded
    (the switch happened). A guarded update, so a worker that renewed meanwhile keeps its job.
    Returns the ids finished."""
    engine = _engine(engine)
    query = sa.select(
        jobs.c.id, jobs.c.survey, jobs.c.worker, jobs.c.stage, jobs.c.cancel_requested,
        jobs.c.lease_expires,
    ).where(jobs.c.status == "running", _expired())  # fmt: skip
    if only is not None:
        query = query.where(jobs.c.id == int(only))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return []
    from backend.registry import ModelRegistry

    registry = ModelRegistry()
    finished = []
    for row in rows:
        lost = f"worker lost: {row.worker or 'its worker'} stopped renewing the job's lease"
        active = registry.active_versions(row.survey) if row.survey else {}
        made = registry.job_versions(int(row.id))
        switched = {k: v for k, v in made.items() if active.get(k) == v}
        if row.stage == ACTIVATING and switched:
            status, error = "succeeded", None
            result: dict[str, Any] | None = {
                "version": switched.get("classifier", next(iter(switched.values()))),
                "versions": switched, "activated": True,
                "reason": f"activated; {lost} just after the switch",
            }  # fmt: skip
        elif row.cancel_requested:
            status, error, result = "cancelled", f"cancelled; {lost}", None
        else:
            status, error, result = "failed", f"{lost}; nothing was activated", None
        values: dict[str, Any] = {"status": status, "finished": _now(), "error": error}
        if result is not None:
            values["result"] = json.dumps(result, default=str)
        with engine.begin() as conn:
            done = conn.execute(
                jobs.update().where(jobs.c.id == row.id, jobs.c.status == "running", _expired())
                .values(**values)
            )  # fmt: skip
        if done.rowcount == 1:
            from backend.jobs.orphans import settle_versions

            settle_versions(int(row.id), status)
            log.warning("job %s %s: %s", row.id, status, error or result)
            finished.append(int(row.id))
    return finished


def retrain_busy(survey: str, engine: Engine | None = None) -> bool:
    """Whether a ``retrain`` job of ``survey`` is queued or running."""
    query = sa.select(sa.func.count()).where(
        jobs.c.survey == survey,
        jobs.c.kind == "retrain",
        jobs.c.status.in_(("queued", "running")),
    )
    with _engine(engine).connect() as conn:
        return bool(conn.execute(query).scalar_one())


def queued_ids(engine: Engine | None = None) -> list[int]:
    with _engine(engine).connect() as conn:
        query = sa.select(jobs.c.id).where(jobs.c.status == "queued").order_by(jobs.c.id)
        return [int(r[0]) for r in conn.execute(query).all()]
