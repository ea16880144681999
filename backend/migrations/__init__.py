"""Schema migrations (Alembic) of LatentSky's database, applied on first connection.

:func:`upgrade` brings a database to the newest revision (``versions/``). A database made before
migrations existed (tables created by ``create_all``, no ``alembic_version``) upgrades in place:
the baseline creates only the tables it lacks, so its rows stay. Two processes opening a fresh
or old database at once do not race: the upgrade runs in one transaction that first takes the
database's write lock (SQLite ``BEGIN IMMEDIATE``) or a PostgreSQL advisory lock, and checks the
revision again once it holds it. A database already at the newest revision costs one read.

A schema change is a new file in ``versions/`` (copy ``script.py.mako``; ``down_revision`` = the
previous head) whose ``upgrade()`` makes the change; ``tests/unit/test_migrations.py`` fails
while the tables the code defines and the migrated schema differ.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import sqlalchemy as sa

if logging.getLogger("alembic").level == logging.NOTSET:  # its INFO lines on every first open
    logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
MIGRATION_LOCK = "migrate"  # advisory lock key on PostgreSQL
# Alembic's ``context``/``op`` are module-level proxies: one migration at a time per process
_alembic_lock = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for ``backend/migrations`` (no ini file), bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    """The newest revision."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"backend/migrations has {len(heads)} heads {heads}; merge them")
    return heads[0]


def current(conn: Connection) -> str | None:
    """The database's revision (None: never migrated: empty, or made by ``create_all``)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database of ``engine`` to ``revision`` (default: newest) under the lock."""
    from backend.db import write_transaction

    target = head() if revision == "head" else revision
    with engine.connect() as conn:
        if current(conn) == target:
            return
    with _alembic_lock, write_transaction(engine, MIGRATION_LOCK) as conn:
        before = current(conn)
        if before == target:  # another process did it while we waited for the lock
            return
        command.upgrade(alembic_config(conn), revision)
    log.info(
        "database schema %s -> %s (%s)", before or "none", target, engine.url.get_backend_name()
    )


def stamp(engine: Engine, revision: str) -> None:
    """Record ``revision`` as the database's without running migrations (repairs)."""
    from backend.db import write_transaction

    with _alembic_lock, write_transaction(engine, MIGRATION_LOCK) as conn:
        command.stamp(alembic_config(conn), revision)


def table_names(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())
