"""Schema migrations (Alembic): an old database upgrades in place and keeps its rows, the
migrated schema is the schema the code defines, and concurrent first connections do not race."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import backend.auth.users
import backend.collections
import backend.jobs.table  # noqa: F401  (its table in the metadata)
from backend import migrations
from backend.config import get_settings
from backend.db import _create_engine, engine_for, metadata
from backend.feedback import latest_interest
from backend.jobs.table import get_job
from backend.labels import LabelStore
from backend.survey import Survey

# What ``create_all`` made before migrations existed (SQLite's own record of it, commit c93f4bb).
OLD_LAYOUT = """
CREATE TABLE interest_scores (
    id INTEGER NOT NULL, survey VARCHAR(64) NOT NULL, object_id VARCHAR(256) NOT NULL,
    user VARCHAR(256) NOT NULL, score SMALLINT NOT NULL, created DATETIME NOT NULL,
    PRIMARY KEY (id), CONSTRAINT score_range CHECK (score >= 0 AND score <= 5));
CREATE INDEX ix_interest_scores_survey_object ON interest_scores (survey, object_id);
CREATE TABLE label_votes (
    id INTEGER NOT NULL, survey VARCHAR(64) NOT NULL, object_id VARCHAR(256) NOT NULL,
    task VARCHAR(64) NOT NULL, value VARCHAR(256) NOT NULL, fraction FLOAT NOT NULL,
    n_votes INTEGER, source VARCHAR(64) NOT NULL, batch BIGINT NOT NULL,
    created DATETIME NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_label_votes_survey_task ON label_votes (survey, task, source);
CREATE TABLE label_events (
    id INTEGER NOT NULL, survey VARCHAR(64) NOT NULL, object_id VARCHAR(256) NOT NULL,
    task VARCHAR(64) NOT NULL, value VARCHAR(256), user VARCHAR(256) NOT NULL,
    source VARCHAR(64) NOT NULL, weight FLOAT NOT NULL, undoes INTEGER,
    created DATETIME NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_label_events_undoes ON label_events (undoes);
CREATE INDEX ix_label_events_survey_task ON label_events (survey, task);
CREATE TABLE jobs (
    id INTEGER NOT NULL, kind VARCHAR(32) NOT NULL, survey VARCHAR(64), params TEXT NOT NULL,
    status VARCHAR(16) NOT NULL, progress TEXT NOT NULL, log_tail TEXT NOT NULL,
    requested_by VARCHAR(256) NOT NULL, cancel_requested BOOLEAN NOT NULL, worker VARCHAR(300),
    created DATETIME NOT NULL, started DATETIME, finished DATETIME, result TEXT, error TEXT,
    PRIMARY KEY (id));
CREATE INDEX ix_jobs_survey_status ON jobs (survey, status);
"""
OLD_ROWS = """
INSERT INTO label_events VALUES (1, 'tiny', 'tiny-0001', 'class', 'spiral', 'ana', 'ui', 1.0,
    NULL, '2026-01-01 10:00:00.000000');
INSERT INTO label_events VALUES (2, 'tiny', 'tiny-0002', 'class', 'merger', 'ana', 'ui', 1.0,
    NULL, '2026-01-01 10:00:01.000000');
INSERT INTO label_events VALUES (3, 'tiny', 'tiny-0002', 'class', NULL, 'ana', 'undo', 0.0,
    2, '2026-01-01 10:00:02.000000');
INSERT INTO label_votes VALUES (1, 'tiny', 'tiny-0003', 'class', 'elliptical', 0.75, 4, 'gz',
    7, '2026-01-01 10:00:00.000000');
INSERT INTO interest_scores VALUES (1, 'tiny', 'tiny-0004', 'ana', 4,
    '2026-01-01 10:00:00.000000');
INSERT INTO jobs VALUES (1, 'sleep', NULL, '{}', 'succeeded', '{}', '', 'ana', 0, NULL,
    '2026-01-01 10:00:00.000000', NULL, NULL, '{"steps": 2}', NULL);
"""


def _old_sqlite_database(path: Path, tables: str = OLD_LAYOUT, rows: str = OLD_ROWS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(tables)
        db.executescript(rows)


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_an_old_sqlite_database_upgrades_in_place_and_keeps_its_rows(tiny_survey: Survey) -> None:
    _old_sqlite_database(get_settings().home / "latentsky.db")
    store = LabelStore()  # first connection: migrates
    assert _revision(store.engine) == migrations.head()
    assert store.current("tiny")[["object_id", "value"]].values.tolist() == [
        ["tiny-0001", "spiral"]
    ]
    assert store.soft_labels("tiny").set_index("object_id").loc["tiny-0003", "elliptical"] == 0.75
    assert latest_interest("tiny").values.tolist() == [["tiny-0004", 4.0]]
    assert get_job(1)["result"] == {"steps": 2}
    store.add("tiny", "tiny-0005", "spiral", user="bob")  # and it is still writable
    assert store.undo_last("tiny", user="ana")["object_id"] == "tiny-0001"
    assert store.count("tiny") == 1


def test_an_old_database_with_some_tables_gets_the_missing_ones(home: Path) -> None:
    """Each store created its own tables on first use, so an old database may lack some."""
    only_scores = OLD_LAYOUT.split("CREATE TABLE label_votes")[0]
    rows = "INSERT INTO interest_scores VALUES (1, 'tiny', 'a', 'ana', 4, '2026-01-01 10:00:00');"
    _old_sqlite_database(home / "latentsky.db", only_scores, rows)
    engine = engine_for()
    assert set(sa.inspect(engine).get_table_names()) >= {
        "interest_scores", "label_events", "label_votes", "jobs", "alembic_version",
    }  # fmt: skip
    assert latest_interest("tiny").values.tolist() == [["a", 4.0]]


@pytest.mark.both_databases
def test_the_migrated_schema_is_the_schema_the_code_defines(home: Path) -> None:
    """Fails when a table or column is added to the code without a migration."""
    engine = _create_engine(get_settings().database_url)
    try:
        migrations.upgrade(engine)  # migrations only, no create_all
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diffs == []


@pytest.mark.both_databases
def test_concurrent_first_connections_migrate_once(home: Path) -> None:
    url = get_settings().database_url
    engines = [_create_engine(url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    errors: list[str] = []

    def first_connection(engine: sa.Engine) -> None:
        start.wait()
        try:
            migrations.upgrade(engine)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=first_connection, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors
        with engines[0].connect() as conn:
            versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        assert versions == [(migrations.head(),)]
    finally:
        for engine in engines:
            engine.dispose()
