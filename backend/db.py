"""The database: one engine per URL, the shared table metadata, and transactions.

``DATABASE_URL`` (``backend.config``) picks the database: a SQLite file in the data root by
default (WAL journal, so readers never block the writer), PostgreSQL when set. Every store of
the process (labels, votes, jobs, users, interest scores) defines its tables on :data:`metadata`
and reaches the database through :func:`engine_for`.

:func:`engine_for` gives the one engine per database URL that every store of the process shares,
migrated to the newest schema on first connect (``backend.migrations``). On SQLite each
connection sets ``busy_timeout`` (a writer waits up to 30 s for another writer's lock instead of
failing with "database is locked"), WAL and ``synchronous=FULL`` (a committed transaction is on
disk when ``commit`` returns, so what was acknowledged survives a killed process and a power
cut). The driver's own transaction handling stays on: a transaction starts at its first write
statement, so an insert-only transaction takes the lock and waits for it.
:func:`write_transaction` is for read-then-write transactions (``BEGIN IMMEDIATE``: the lock
first, then the read; a PostgreSQL advisory lock, :func:`advisory_key`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backend.config import get_settings

BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another's lock before failing
MAX_TEXT = 256  # the length of the short text columns (ids, user names, values)

metadata = sa.MetaData()


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str | None = None) -> Engine:
    """The process-wide engine of ``url`` (default: ``DATABASE_URL``), schema migrated."""
    url = url or get_settings().database_url
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            ensure_schema(engine)
            _engines[url] = engine
        return engine


def ensure_schema(engine: Engine) -> None:
    """Migrate the database to the newest schema (``backend.migrations``; an old database made
    by ``create_all`` upgrades in place), then create any table of ``metadata`` that no
    migration makes yet (``tests/unit/test_migrations.py`` asks for its migration)."""
    from backend.migrations import upgrade

    upgrade(engine)
    create_tables(engine, metadata)


def dispose_engine(url: str) -> None:
    """Forget and close the process-wide engine of ``url`` (tests dropping a database)."""
    with _engines_lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


def create_tables(
    engine: Engine, meta: sa.MetaData, tables: list[sa.Table] | None = None, attempts: int = 5
) -> None:
    """``create_all`` that tolerates another process creating the same tables at the same time.

    ``create_all`` checks for each table and then creates it; a second process (the worker and a
    job submitter starting on a fresh database) can create it in between, and the loser's
    CREATE fails with "already exists". Then the check is simply made again.
    """
    for attempt in range(attempts):
        try:
            meta.create_all(engine, tables=tables)
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
            if "already exists" not in str(exc).lower() or attempt == attempts - 1:
                raise


def _create_engine(url: str) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # timeout: the driver's busy handler, so a writer waits up to 30 s for the lock
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # before anything that locks
        _wal(cursor)  # readers never block the writer
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
        cursor.close()

    return engine


def _wal(cursor: Any) -> None:
    """Switch to the WAL journal (it persists in the file). The switch needs the database to
    itself and fails with "database is locked" at once, without the busy handler, when another
    connection holds a lock (the worker and a submitter opening a fresh database together): so
    it is made only when needed, and retried for up to the busy timeout."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def write_transaction(engine: Engine, *key: object) -> Iterator[Connection]:
    """``engine.begin()`` that holds a write lock from the start, for read-then-write transactions.

    Undo (find the latest label, then cancel it) must not let two transactions read the same row
    and both act on it. On SQLite a deferred transaction reads without a lock, and one that read
    an older snapshot cannot upgrade to a writer (``database is locked`` at once), so this starts
    with ``BEGIN IMMEDIATE``: it waits for the database's write lock (busy timeout) and then sees
    the latest data. On PostgreSQL (READ COMMITTED) row locks would not help, since undo inserts
    a new event rather than changing the one it reads; the transaction first takes a
    transaction-scoped advisory lock (``pg_advisory_xact_lock``) on ``key`` (e.g. ``"undo",
    survey, task, user``; no key: one lock for the whole database, like SQLite). Every later
    statement takes a fresh snapshot, so it sees what the previous holder committed; the lock is
    released at commit or rollback, also when the connection dies.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(*key)})
        yield conn


def advisory_key(*key: object) -> int:
    """A stable signed 64-bit PostgreSQL advisory lock id for ``key`` (namespaced)."""
    text = "\x1f".join(["latentsky", *map(str, key)]).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)
