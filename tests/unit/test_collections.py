"""Collections on SQLite and PostgreSQL: saved, shared with the survey's users, validated,
deleted only by their owner or a curator, exported, and made by the migration."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from backend import collections as coll
from backend import migrations
from backend.auth.roles import AccessDenied, Account
from backend.config import get_settings
from backend.db import _create_engine
from backend.survey import Survey

pytestmark = pytest.mark.both_databases

ANA = Account("ana", "labeller")
BEN = Account("ben", "labeller")
CURATOR = Account("cleo", "curator")


def test_saved_collection_is_shared_in_order_with_owner_and_note(tiny_survey: Survey) -> None:
    ids = ["tiny-0007", "tiny-0003", "tiny-0007", "tiny-0100"]
    made = coll.create(
        tiny_survey, "  Odd ones ", ids, by=ANA, note="cafe\u0301\nsecond line", kind="anomalies"
    )
    assert made.object_ids == ("tiny-0007", "tiny-0003", "tiny-0100")  # duplicates dropped
    seen = coll.get("tiny", "Odd ones")  # another user of the survey reads it
    assert (seen.name, seen.owner, seen.kind, seen.size) == ("Odd ones", "ana", "anomalies", 3)
    assert seen.note == "caf\u00e9\nsecond line"  # NFC, line feed kept
    assert seen.object_ids == made.object_ids
    coll.create(tiny_survey, "second", ["tiny-0001"], by=BEN)
    assert [c.name for c in coll.list_collections("tiny")] == ["second", "Odd ones"]
    assert coll.list_collections("other") == []


def test_bad_input_is_one_clear_error(tiny_survey: Survey) -> None:
    with pytest.raises(coll.CollectionError, match="unknown object id 'nope'"):
        coll.create(tiny_survey, "x", ["tiny-0001", "nope"], by=ANA)
    with pytest.raises(coll.CollectionError, match=r"zero-width|bidi"):
        coll.create(tiny_survey, "ana\u202e", ["tiny-0001"], by=ANA)
    with pytest.raises(coll.CollectionError, match="note contains a control"):
        coll.create(tiny_survey, "x", ["tiny-0001"], by=ANA, note="a\x00b")
    with pytest.raises(coll.CollectionError, match="at least one object"):
        coll.create(tiny_survey, "x", [], by=ANA)
    with pytest.raises(coll.CollectionError, match="unknown collection kind"):
        coll.create(tiny_survey, "x", ["tiny-0001"], by=ANA, kind="bogus")
    coll.create(tiny_survey, "x", ["tiny-0001"], by=ANA)
    with pytest.raises(coll.CollectionError, match="already has a collection named 'x'"):
        coll.create(tiny_survey, "x", ["tiny-0002"], by=BEN)
    with pytest.raises(coll.CollectionError, match="no collection named 'y'"):
        coll.get("tiny", "y")
    assert coll.get("tiny", "x").object_ids == ("tiny-0001",)


def test_roles_decide_who_saves_and_deletes(tiny_survey: Survey) -> None:
    with pytest.raises(AccessDenied, match="labeller"):
        coll.create(tiny_survey, "v", ["tiny-0001"], by=Account("vic", "viewer"))
    coll.create(tiny_survey, "mine", ["tiny-0001"], by=ANA)
    with pytest.raises(AccessDenied, match="curator"):
        coll.delete("tiny", "mine", by=BEN)
    coll.delete("tiny", "mine", by=ANA)
    coll.create(tiny_survey, "mine", ["tiny-0002"], by=ANA)
    coll.delete("tiny", "mine", by=CURATOR)
    assert coll.list_collections("tiny") == []
    # no logins: the name the user typed is the owner
    local = Account(None, "labeller")
    coll.create(tiny_survey, "typed", ["tiny-0002"], by=local, user="dora")
    assert coll.get("tiny", "typed").owner == "dora"
    with pytest.raises(AccessDenied):
        coll.delete("tiny", "typed", by=local, user="eve")
    coll.delete("tiny", "typed", by=local, user="dora")


def test_export_table_keeps_the_saved_order(tiny_survey: Survey, tmp_path: Path) -> None:
    from astropy.table import Table

    from backend.latent.export import export_table

    made = coll.create(tiny_survey, "t", ["tiny-0009", "tiny-0002"], by=ANA)
    rows = coll.table(tiny_survey, made)
    assert rows["object_id"].tolist() == ["tiny-0009", "tiny-0002"]
    assert rows["rank"].tolist() == [1, 2]
    assert rows["index"].tolist() == [9, 2]
    back = Table.read(export_table(rows, tmp_path / "t.fits"))
    assert [str(v) for v in back["object_id"]] == ["tiny-0009", "tiny-0002"]


def test_migration_makes_the_collections_table(home: Path) -> None:
    engine = _create_engine(get_settings().database_url)
    try:
        migrations.upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = compare_metadata(context, coll.metadata)
    finally:
        engine.dispose()
    assert [d for d in diffs if "collections" in repr(d)] == []


def test_cli_lists_shows_exports_and_deletes(
    tiny_survey: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from astropy.table import Table

    from backend.cli import main

    coll.create(tiny_survey, "trails", ["tiny-0005", "tiny-0001"], by=ANA, note="=1+1 odd")
    assert main(["collections", "list", "--survey", "tiny"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[1]
    assert row.split()[:4] == ["trails", "selection", "2", "ana"]
    assert main(["collections", "show", "trails", "--survey", "tiny"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["=1+1 odd", "tiny-0005", "tiny-0001"]
    out = tmp_path / "trails.vot"
    assert main(["collections", "export", "trails", "--survey", "tiny", "--out", str(out)]) == 0
    assert [str(v) for v in Table.read(out)["object_id"]] == ["tiny-0005", "tiny-0001"]
    assert main(["collections", "delete", "trails", "--survey", "tiny"]) == 0
    capsys.readouterr()
    assert main(["collections", "show", "trails", "--survey", "tiny"]) == 2
    assert capsys.readouterr().err.startswith("error: survey tiny has no collection named")
