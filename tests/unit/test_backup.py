"""``backup`` / ``restore``: labels, votes, interest scores, jobs, active pointers and label
schemas into an empty data root, one snapshot while writers go on, on SQLite and PostgreSQL."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from backend.cli import main
from backend.commands import backup as backup_module
from backend.db import dispose_engine, engine_for
from backend.feedback import interest_scores, latest_interest
from backend.feedback import record_interest as record
from backend.jobs import table as jobs
from backend.labels import LabelStore
from backend.labels.schema import load_schema, make_schema, save_schema
from backend.labels.store import label_events
from backend.registry import ModelRegistry
from backend.survey import Survey

pytestmark = pytest.mark.both_databases


@pytest.fixture
def empty_root(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, str | None]]:
    """Another data root (and, on PostgreSQL, another empty database) to restore into."""
    root = tmp_path / "restored"
    if database != "postgresql":
        yield root, None
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    try:
        yield root, url
    finally:
        dispose_engine(url)
        cluster.drop_database(url)


def _move_to(monkeypatch: pytest.MonkeyPatch, root: Path, url: str | None) -> None:
    monkeypatch.setenv("LATENTSKY_HOME", str(root))
    if url is None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("DATABASE_URL", url)


def _fill(store: LabelStore) -> None:
    for i in range(5):
        store.add("tiny", f"tiny-{i:04d}", "spiral" if i % 2 else "elliptical", user="ana")
    store.add("tiny", "tiny-0001", "merger", user="bob")
    store.undo_last("tiny", user="ana")
    votes = pd.DataFrame({"object_id": ["tiny-0007"], "elliptical": [3], "spiral": [1]})
    store.import_votes("tiny", votes, source="gz")
    record("tiny", "tiny-0002", 4, "ana")
    record("tiny", "tiny-0002", 2, "bob")
    done = jobs.insert_job("sleep", "tiny", {"steps": 2}, "ana")
    jobs.claim(done)
    jobs.finish(done, "succeeded", result={"version": "v0001"})
    jobs.insert_job("retrain", "tiny", {}, "bob")
    registry = ModelRegistry()
    version = registry.save("classifier", {}, {"classes": ["a", "b"]}, survey="tiny")
    registry.set_active("tiny", "classifier", version.version)
    save_schema("tiny", make_schema(["elliptical", "spiral", "merger"]))


def _plain(frame: pd.DataFrame) -> dict[str, list]:
    """Columns as lists, missing values as None (NaN != NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("list")


def _state(store: LabelStore) -> dict:
    return {
        "events": _plain(store.events("tiny")),
        "consensus": _plain(store.consensus("tiny")),
        "votes": _plain(store.votes("tiny")),
        "interest": _plain(latest_interest("tiny")),
        "jobs": _plain(jobs.list_jobs()),
        "active": ModelRegistry().active_versions("tiny"),
        "classes": load_schema("tiny").names,
    }


def test_backup_restores_into_an_empty_data_root(
    tiny_survey: Survey,
    tmp_path: Path,
    empty_root: tuple[Path, str | None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = LabelStore()
    _fill(store)
    before = _state(store)
    out = tmp_path / "backup.zip"
    assert main(["backup", "--out", str(out)]) == 0
    assert "label_events 7" in capsys.readouterr().out

    root, url = empty_root
    _move_to(monkeypatch, root, url)
    (root / "surveys").mkdir(parents=True)  # the survey's files are copied as they are
    (root / "surveys" / "tiny").symlink_to(tiny_survey.path)
    assert main(["restore", str(out)]) == 0
    restored = LabelStore()
    assert restored.engine.url != store.engine.url
    after = _state(restored)
    assert after == before
    # new rows get new ids (PostgreSQL's sequences were moved past the restored ones)
    new = restored.add("tiny", "tiny-0009", "spiral", user="cy")
    assert new > max(before["events"]["id"])
    assert record("tiny", "tiny-0009", 1, "cy") > 2
    assert jobs.insert_job("sleep", None, {}, "cy") > max(before["jobs"]["id"])


def test_restore_refuses_a_database_that_has_rows(
    tiny_survey: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LabelStore()
    store.add("tiny", "tiny-0001", "spiral", user="ana")
    out = tmp_path / "backup.zip"
    assert main(["backup", "--out", str(out)]) == 0
    assert main(["restore", str(out)]) == 2
    assert "already has rows" in capsys.readouterr().err
    assert len(store.events("tiny")) == 1
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert main(["restore", str(tmp_path / "junk.zip")]) == 2
    assert "not a LatentSky backup" in capsys.readouterr().err


def test_a_backup_is_one_snapshot_while_writers_go_on(
    tiny_survey: Survey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A label and an interest score written together, in one transaction, between the backup's
    reading of one table and the next: the backup has both or neither."""
    store = LabelStore()
    engine = engine_for()
    real_dump = backup_module._dump_table
    written: list[int] = []

    def write_pair(n: int) -> None:
        row = store._row("tiny", f"tiny-{n:04d}", "class", "spiral", "ana", "ui", 1.0, None)
        with engine.begin() as conn:
            conn.execute(label_events.insert().values(**row))
            conn.execute(
                interest_scores.insert().values(
                    survey="tiny", object_id=f"tiny-{n:04d}", user="ana", score=3,
                    created=row["created"],
                )
            )  # fmt: skip
        written.append(n)

    def dump_then_write(conn: sa.Connection, table: sa.Table, zf: zipfile.ZipFile) -> int:
        count = real_dump(conn, table, zf)
        write_pair(100 + len(written))  # a writer commits between two tables
        return count

    write_pair(1)
    monkeypatch.setattr(backup_module, "_dump_table", dump_then_write)
    manifest = backup_module.backup(tmp_path / "b.zip")
    assert len(written) > 2
    assert manifest["tables"]["label_events"] == manifest["tables"]["interest_scores"] == 1
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        labels = zf.read("tables/label_events.jsonl").decode().splitlines()
    assert len(labels) == 1 and '"tiny-0001"' in labels[0]
