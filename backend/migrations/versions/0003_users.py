"""users: accounts and roles (``LATENTSKY_AUTH=basic|oauth``, ``python -m backend users``).

``name`` is the login (primary key), ``password_hash`` an argon2id hash (NULL for an account
that logs in through OAuth only), ``role`` one of viewer, labeller, curator, admin.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "users" in sa.inspect(op.get_bind()).get_table_names():
        return  # made by create_all with this code before it was migrated
    op.create_table(
        "users",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("users")
