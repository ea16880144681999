"""login_failures: failed logins per account name and client address (the lockout of
``LATENTSKY_AUTH=basic``, :mod:`backend.auth.lockout`).

One row per failed (or in-flight) password check: ``kind`` (``account`` or ``client``), ``key``
(the name or the address) and ``at`` (seconds since the epoch), indexed by (kind, key, at).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "login_failures" in sa.inspect(op.get_bind()).get_table_names():
        return  # made by create_all with this code before it was migrated
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_login_failures_kind_key_at", "login_failures", ["kind", "key", "at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_kind_key_at", table_name="login_failures")
    op.drop_table("login_failures")
