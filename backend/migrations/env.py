"""Alembic environment of LatentSky's database (labels, votes, interest scores, jobs).

Run by :func:`backend.migrations.upgrade` on the connection it passes in
``config.attributes["connection"]`` (already in a transaction that holds the migration lock);
without one (the ``alembic`` command line) it connects to ``DATABASE_URL``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from backend.config import get_settings

connection = context.config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = sa.create_engine(get_settings().database_url)
    with engine.connect() as conn:
        context.configure(connection=conn, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
