"""collections: named lists of a survey's objects shared with the team (``backend.collections``).

One row per collection: ``survey``, ``name`` (unique per survey), ``note``, ``kind``
(selection, search, anomalies), ``owner``, ``object_ids`` (a JSON list, in the order saved),
``created``; indexed by (survey, name).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "collections" in sa.inspect(op.get_bind()).get_table_names():
        return  # made by create_all with this code before it was migrated
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("survey", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("object_ids", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("survey", "name", name="uq_collections_survey_name"),
    )


def downgrade() -> None:
    op.drop_table("collections")
