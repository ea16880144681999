"""Two processes creating the tables of a fresh database at once (worker + job submitter).

CI failed once with "table interest_scores already exists": ``create_all`` checks for a table
and then creates it, and another process created it in between.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa


def test_a_table_created_by_another_process_between_check_and_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.db import create_tables, metadata

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    metadata.create_all(engine)  # "the other process" got there first
    calls = {"n": 0}
    real = engine.dialect.has_table

    def stale_check(*args: object, **kwargs: object) -> bool:
        calls["n"] += 1
        return False if calls["n"] == 1 else real(*args, **kwargs)  # first check is stale

    monkeypatch.setattr(engine.dialect, "has_table", stale_check)
    create_tables(engine, metadata)  # must not raise "already exists"
    assert set(sa.inspect(engine).get_table_names()) >= set(metadata.tables)


def test_other_database_errors_still_raise(tmp_path: Path) -> None:
    from backend.db import create_tables

    meta = sa.MetaData()
    sa.Table("t", meta, sa.Column("x", sa.Integer))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    with pytest.raises(sa.exc.OperationalError, match="unable to open"):
        create_tables(engine, meta)
