"""``python -m backend backup --out F`` and ``python -m backend restore F``.

A backup is one zip file: the rows of every table of the database (labels, votes, interest
scores, jobs, and any table a later migration adds) as JSON lines, the schema revision they were
taken at, each survey's active-version pointers (``models/active/<survey>.json``) and its label
schema (``label_schemas/<survey>.yaml``). Model weights and surveys are files under the data root
and are not in it: copy those folders as they are.

Consistent while the server runs: every table is read from one snapshot. On SQLite the online
backup API (``sqlite3.Connection.backup``) first copies the live database page by page into a
temporary file (writers keep going; the copy is of one moment), and the rows are read from the
copy; on PostgreSQL they are read in one ``REPEATABLE READ READ ONLY`` transaction (the snapshot
``pg_dump`` itself uses). The format does not depend on the database, so a SQLite backup restores
into PostgreSQL and back.

``restore`` migrates the database of ``DATABASE_URL`` to the newest schema, refuses when any of
its tables already has rows or an active pointer or label schema already exists (restore is for
an empty data root), then inserts every row with its id in one transaction (all or nothing;
PostgreSQL's id sequences are moved past the restored ids) and writes the pointer and schema
files atomically.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backend.errors import UserError

FORMAT = "latentsky-backup"
FORMAT_VERSION = 1
SKIP_TABLES = {"alembic_version"}
BATCH = 1000


class BackupError(UserError, ValueError):
    """A backup that cannot be made or restored (the message says why)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backup",
        help="back up labels, votes, interest scores, jobs and active versions to one file",
    )
    p.add_argument("--out", required=True, help="the backup file to write (.zip)")
    p.set_defaults(func=run_backup)


def add_restore_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="restore a backup into an empty data root / database")
    p.add_argument("file", help="a file written by `python -m backend backup`")
    p.set_defaults(func=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    manifest = backup(Path(args.out))
    rows = ", ".join(f"{name} {n}" for name, n in manifest["tables"].items())
    print(
        f"backup {args.out}: {rows}; active pointers of {len(manifest['active'])} survey(s), "
        f"{len(manifest['label_schemas'])} label schema(s)"
    )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    manifest = restore(Path(args.file))
    rows = ", ".join(f"{name} {n}" for name, n in manifest["tables"].items())
    print(f"restored {args.file} (taken {manifest['created']}): {rows}")
    return 0


# -- backup ------------------------------------------------------------------------------------
def backup(out: Path, *, engine: Engine | None = None) -> dict[str, Any]:
    """Write the backup file ``out`` (atomically) and return its manifest."""
    from backend.atomic import atomic_write
    from backend.config import get_settings
    from backend.db import engine_for

    engine = engine or engine_for()
    home = get_settings().home
    manifest: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with _snapshot(engine) as conn:
                tables, revision = _dump_tables(conn, zf)
            active = _copy_files(zf, home / "models" / "active", "*.json", "active")
            schemas = _copy_files(zf, home / "label_schemas", "*.yaml", "label_schemas")
            manifest.update(
                format=FORMAT, format_version=FORMAT_VERSION,
                created=datetime.now(UTC).isoformat(), database=engine.dialect.name,
                revision=revision, tables=tables, active=active, label_schemas=schemas,
            )  # fmt: skip
            zf.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")

    atomic_write(Path(out), write)
    return manifest


class _Snapshot:
    """A connection on one consistent snapshot of the database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tmp: Path | None = None
        self.copy: Engine | None = None
        self.conn: Connection | None = None
        self.txn: Any = None

    def __enter__(self) -> Connection:
        if self.engine.dialect.name == "sqlite":
            self.tmp = Path(tempfile.mkdtemp(prefix="latentsky-backup-"))
            target = self.tmp / "snapshot.db"
            source = sqlite3.connect(self.engine.url.database, timeout=30)
            try:
                with sqlite3.connect(target) as dest:
                    source.backup(dest)  # online backup API: one moment of the live file
            finally:
                source.close()
            self.copy = sa.create_engine(f"sqlite:///{target}")
            self.conn = self.copy.connect()
            return self.conn
        self.conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            self.conn = self.conn.execution_options(isolation_level="REPEATABLE READ")
            self.txn = self.conn.begin()
            self.conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:
            self.txn = self.conn.begin()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.txn is not None:
            self.txn.rollback()
        if self.conn is not None:
            self.conn.close()
        if self.copy is not None:
            self.copy.dispose()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _snapshot(engine: Engine) -> _Snapshot:
    return _Snapshot(engine)


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _dump_tables(conn: Connection, zf: zipfile.ZipFile) -> tuple[dict[str, int], str | None]:
    """Every table's rows as ``tables/<name>.jsonl``; returns ({name: rows}, revision)."""
    revision = _revision(conn)
    meta = sa.MetaData()
    meta.reflect(conn)
    counts: dict[str, int] = {}
    for table in meta.sorted_tables:
        if table.name in SKIP_TABLES:
            continue
        counts[table.name] = _dump_table(conn, table, zf)
    return counts, revision


def _dump_table(conn: Connection, table: sa.Table, zf: zipfile.ZipFile) -> int:
    order = list(table.primary_key.columns) or list(table.columns)
    n = 0
    with zf.open(f"tables/{table.name}.jsonl", "w") as fh:
        result = conn.execution_options(yield_per=BATCH).execute(sa.select(table).order_by(*order))
        for row in result.mappings():
            fh.write((json.dumps({k: _plain(v) for k, v in row.items()}) + "\n").encode())
            n += 1
    return n


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite keeps no zone; the stores write UTC
            value = value.replace(tzinfo=UTC)
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    return value


def _copy_files(zf: zipfile.ZipFile, folder: Path, pattern: str, into: str) -> list[str]:
    names = []
    for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        zf.writestr(f"{into}/{path.name}", path.read_bytes())
        names.append(path.stem)
    return names


# -- restore -----------------------------------------------------------------------------------
def restore(path: Path, *, engine: Engine | None = None) -> dict[str, Any]:
    """Restore the backup ``path`` into the (empty) database and data root; its manifest."""
    from backend.atomic import atomic_write
    from backend.config import get_settings
    from backend.db import engine_for, write_transaction

    if not Path(path).is_file():
        raise BackupError(f"{path}: no such backup file")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise BackupError(f"{path}: not a LatentSky backup (not a zip file)") from None
    with zf:
        manifest = _manifest(zf, path)
        engine = engine or engine_for()  # migrated to the newest schema
        home = get_settings().home
        files = [
            (home / "models" / "active" / f"{s}.json", f"active/{s}.json")
            for s in manifest["active"]
        ] + [
            (home / "label_schemas" / f"{s}.yaml", f"label_schemas/{s}.yaml")
            for s in manifest["label_schemas"]
        ]
        for target, _ in files:
            if target.exists():
                raise BackupError(f"{target} exists: restore into an empty data root")
        meta = sa.MetaData()
        meta.reflect(engine)
        missing = [t for t in manifest["tables"] if t not in meta.tables]
        if missing:
            raise BackupError(
                f"{path}: table(s) {', '.join(missing)} are not in this database's schema "
                f"(backup taken at schema revision {manifest['revision']}); update LatentSky"
            )
        with write_transaction(engine, "restore") as conn:
            for name in manifest["tables"]:
                table = meta.tables[name]
                if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                    raise BackupError(
                        f"table {name} of {engine.url.render_as_string()} already has rows: "
                        "restore into an empty database"
                    )
            for table in meta.sorted_tables:  # parents before children
                if table.name in manifest["tables"]:
                    _load_table(conn, table, zf)
        for target, member in files:
            data = zf.read(member)
            atomic_write(target, lambda tmp, data=data: tmp.write_bytes(data))
    return manifest


def _manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except (KeyError, ValueError):
        raise BackupError(f"{path}: not a LatentSky backup (no readable manifest.json)") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a LatentSky backup")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(
            f"{path}: backup format {manifest['format_version']} is newer than this LatentSky "
            f"reads ({FORMAT_VERSION}); update LatentSky"
        )
    return manifest


def _rows(zf: zipfile.ZipFile, table: sa.Table) -> Iterator[dict[str, Any]]:
    columns = {c.name for c in table.columns}
    with zf.open(f"tables/{table.name}.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            unknown = set(row) - columns
            if unknown:
                raise BackupError(
                    f"table {table.name}: column(s) {', '.join(sorted(unknown))} of the backup "
                    "are not in this database's schema; update LatentSky"
                )
            yield {k: _typed(v) for k, v in row.items()}


def _typed(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "$datetime":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
        if tag == "$bytes":
            return bytes.fromhex(text)
    return value


def _load_table(conn: Connection, table: sa.Table, zf: zipfile.ZipFile) -> None:
    batch: list[dict[str, Any]] = []
    for row in _rows(zf, table):
        batch.append(row)
        if len(batch) >= BATCH:
            conn.execute(table.insert(), batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
    if conn.dialect.name == "postgresql":  # new rows must get ids above the restored ones
        for column in table.primary_key.columns:
            if isinstance(column.type, sa.Integer):
                conn.execute(
                    sa.text(
                        "SELECT setval(pg_get_serial_sequence(:t, :c), "
                        f'(SELECT COALESCE(MAX("{column.name}"), 0) + 1 FROM "{table.name}"), '
                        "false) WHERE pg_get_serial_sequence(:t, :c) IS NOT NULL"
                    ),
                    {"t": table.name, "c": column.name},
                )
