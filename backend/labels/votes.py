"""Soft labels: vote fractions per class (Galaxy Zoo style), stored as append-only batches.

An import writes one row per (object, class) with a non-zero fraction, all under one batch id.
The effective fractions of an object for a vote ``source`` come from its latest batch, so a
re-import of a corrected catalog replaces the old fractions without deleting anything.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.db import MAX_TEXT, metadata, write_transaction

label_votes = sa.Table(
    "label_votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("survey", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(MAX_TEXT), nullable=False),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("value", sa.String(MAX_TEXT), nullable=False),
    sa.Column("fraction", sa.Float, nullable=False),
    sa.Column("n_votes", sa.Integer, nullable=True),  # votes behind the fraction, when known
    sa.Column("source", sa.String(64), nullable=False),  # e.g. "galaxyzoo"
    sa.Column("batch", sa.BigInteger, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_label_votes_survey_task", "survey", "task", "source"),
)

VOTE_COLUMNS = ["object_id", "value", "fraction", "n_votes", "source"]


def normalise_fractions(
    frame: pd.DataFrame, classes: list[str], where: str
) -> tuple[pd.DataFrame, list[str]]:
    """Rows scaled to sum 1 over ``classes`` (non-negative, finite); ``(frame, problems)``."""
    values = frame[classes].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    problems = []
    ids = frame["object_id"].astype(str).to_numpy()
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        problems.append(f"{where}: non-numeric or missing fractions for {_some(ids[bad])}")
    negative = (np.nan_to_num(values) < 0).any(axis=1)
    if negative.any():
        problems.append(f"{where}: negative fractions for {_some(ids[negative])}")
    totals = np.nan_to_num(values).sum(axis=1)
    empty = totals <= 0
    if (empty & ~bad & ~negative).any():
        problems.append(f"{where}: all fractions are 0 for {_some(ids[empty & ~bad])}")
    out = frame[["object_id"]].copy()
    out[classes] = values / np.where(totals > 0, totals, 1.0)[:, None]
    return out, problems


def _some(ids: np.ndarray) -> str:
    shown = ", ".join(map(str, ids[:5]))
    return f"{len(ids)} object(s) ({shown}{', ...' if len(ids) > 5 else ''})"


def write_votes(
    engine: Engine,
    survey: str,
    fractions: pd.DataFrame,
    classes: list[str],
    *,
    source: str,
    task: str,
    n_votes: pd.Series | None = None,
) -> int:
    """Append one batch (fractions already validated and normalised); returns rows written.

    The batch id is the clock in ns, but always above every earlier batch of the same survey,
    task and source (read under :func:`write_transaction`, so two imports at once cannot take
    the same id), so a re-import replaces the old fractions even if the clock went back.
    """
    created = datetime.now(UTC)
    long = fractions.melt(id_vars="object_id", value_vars=classes, var_name="value",
                          value_name="fraction")  # fmt: skip
    if n_votes is not None:
        totals = dict(zip(fractions["object_id"], n_votes, strict=True))
        long["n_votes"] = long["object_id"].map(totals)
    else:
        long["n_votes"] = None
    long = long[long["fraction"] > 0]
    rows = [
        {"survey": survey, "object_id": str(o), "task": task, "value": str(v),
         "fraction": float(f), "n_votes": None if pd.isna(n) else int(n), "source": source,
         "created": created}
        for o, v, f, n in zip(long["object_id"], long["value"], long["fraction"], long["n_votes"],
                              strict=True)
    ]  # fmt: skip
    with write_transaction(engine, "votes", survey, task, source) as conn:
        last = conn.execute(
            sa.select(sa.func.max(label_votes.c.batch)).where(
                label_votes.c.survey == survey,
                label_votes.c.task == task,
                label_votes.c.source == source,
            )
        ).scalar()
        batch = max(time.time_ns(), (last or 0) + 1)
        if rows:
            conn.execute(label_votes.insert(), [{**row, "batch": batch} for row in rows])
    return len(fractions)


def current_votes(engine: Engine, survey: str, task: str) -> pd.DataFrame:
    """Effective vote fractions: per (object, source) the rows of its latest batch."""
    latest = (
        sa.select(
            label_votes.c.object_id,
            label_votes.c.source,
            sa.func.max(label_votes.c.batch).label("batch"),
        )
        .where(label_votes.c.survey == survey, label_votes.c.task == task)
        .group_by(label_votes.c.object_id, label_votes.c.source)
        .subquery()
    )
    query = (
        sa.select(*(label_votes.c[c] for c in VOTE_COLUMNS))
        .join(
            latest,
            (label_votes.c.object_id == latest.c.object_id)
            & (label_votes.c.source == latest.c.source)
            & (label_votes.c.batch == latest.c.batch),
        )
        .where(label_votes.c.survey == survey, label_votes.c.task == task)
        .order_by(label_votes.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=VOTE_COLUMNS)


def soft_label_table(votes: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Wide table: one row per object, one fraction column per class (mean over sources)."""
    if votes.empty:
        return pd.DataFrame(columns=["object_id", *classes])
    per_source = votes.pivot_table(
        index=["object_id", "source"], columns="value", values="fraction", fill_value=0.0
    )
    wide = per_source.groupby(level="object_id").mean()
    wide = wide.reindex(columns=classes, fill_value=0.0)
    return wide.reset_index().rename_axis(columns=None)
