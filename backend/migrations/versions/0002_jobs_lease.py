"""jobs: worker lease and stage (``lease_expires``, ``stage``) for the job state machine.

A running job is held by its worker's lease (renewed by heartbeats) instead of a PID; ``stage``
is the job's current step (``activating``: no cancel after it). Both nullable, so existing rows
need no value. A database whose ``jobs`` table already has them (made by ``create_all`` with
this code before it was migrated) is left as it is.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (
    ("lease_expires", sa.DateTime(timezone=True)),
    ("stage", sa.String(32)),
)


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("jobs")}
    for name, type_ in COLUMNS:
        if name not in have:
            op.add_column("jobs", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
