"""Baseline: the tables as ``create_all`` made them before migrations existed.

An old database (made by ``create_all``, no ``alembic_version`` table) may hold any subset of
these tables, since each store created its own on first use; this migration creates only those
that are missing and leaves the others, and their rows, as they are. The definitions are frozen
here: later changes are later migrations, never edits of this one.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MAX_TEXT = 256


def _tables() -> list[sa.Table]:
    meta = sa.MetaData()
    return [
        sa.Table(
            "interest_scores", meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("survey", sa.String(64), nullable=False),
            sa.Column("object_id", sa.String(MAX_TEXT), nullable=False),
            sa.Column("user", sa.String(MAX_TEXT), nullable=False),
            sa.Column("score", sa.SmallInteger, nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.CheckConstraint("score >= 0 AND score <= 5", name="score_range"),
            sa.Index("ix_interest_scores_survey_object", "survey", "object_id"),
        ),
        sa.Table(
            "label_events", meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("survey", sa.String(64), nullable=False),
            sa.Column("object_id", sa.String(MAX_TEXT), nullable=False),
            sa.Column("task", sa.String(64), nullable=False),
            sa.Column("value", sa.String(MAX_TEXT), nullable=True),
            sa.Column("user", sa.String(MAX_TEXT), nullable=False),
            sa.Column("source", sa.String(64), nullable=False),
            sa.Column("weight", sa.Float, nullable=False),
            sa.Column("undoes", sa.Integer, nullable=True),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Index("ix_label_events_survey_task", "survey", "task"),
            sa.Index("ix_label_events_undoes", "undoes"),
        ),
        sa.Table(
            "label_votes", meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("survey", sa.String(64), nullable=False),
            sa.Column("object_id", sa.String(MAX_TEXT), nullable=False),
            sa.Column("task", sa.String(64), nullable=False),
            sa.Column("value", sa.String(MAX_TEXT), nullable=False),
            sa.Column("fraction", sa.Float, nullable=False),
            sa.Column("n_votes", sa.Integer, nullable=True),
            sa.Column("source", sa.String(64), nullable=False),
            sa.Column("batch", sa.BigInteger, nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Index("ix_label_votes_survey_task", "survey", "task", "source"),
        ),
        sa.Table(
            "jobs", meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("survey", sa.String(64), nullable=True),
            sa.Column("params", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("progress", sa.Text, nullable=False),
            sa.Column("log_tail", sa.Text, nullable=False),
            sa.Column("requested_by", sa.String(256), nullable=False),
            sa.Column("cancel_requested", sa.Boolean, nullable=False),
            sa.Column("worker", sa.String(300), nullable=True),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started", sa.DateTime(timezone=True), nullable=True),
            sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
            sa.Column("result", sa.Text, nullable=True),
            sa.Column("error", sa.Text, nullable=True),
            sa.Index("ix_jobs_survey_status", "survey", "status"),
        ),
    ]  # fmt: skip


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for table in _tables():
        if table.name not in existing:
            table.create(bind)  # with its indexes and constraints


def downgrade() -> None:
    for table in reversed(_tables()):
        op.drop_table(table.name)
