"""Label store: append-only events, undo, current view per user, validation, schemas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from backend.config import get_settings
from backend.labels import LabelError, LabelStore, load_schema
from backend.labels.schema import SchemaError, read_schema
from backend.survey import Survey


@pytest.fixture
def store(tiny_survey: Survey) -> LabelStore:
    return LabelStore()


def test_labels_are_stored_and_current_view_takes_the_latest(store: LabelStore) -> None:
    store.add("tiny", "tiny-0001", "spiral", user="ana")
    store.add("tiny", "tiny-0002", "merger", user="ana")
    store.add("tiny", "tiny-0001", "elliptical", user="ana")  # changed her mind
    store.add("tiny", "tiny-0001", "spiral", user="ben")
    current = store.current("tiny")
    mine = current[current["user"] == "ana"].set_index("object_id")["value"].to_dict()
    assert mine == {"tiny-0001": "elliptical", "tiny-0002": "merger"}
    assert store.count("tiny") == 3
    assert store.count("tiny", user="ben") == 1
    assert len(store.events("tiny")) == 4  # nothing overwritten


def test_undo_is_an_event_and_restores_the_previous_label(store: LabelStore) -> None:
    store.add("tiny", "tiny-0001", "spiral", user="ana")
    store.add("tiny", "tiny-0001", "merger", user="ana")
    store.add("tiny", "tiny-0005", "irregular", user="ben")
    undone = store.undo_last("tiny", user="ana")
    assert undone["object_id"] == "tiny-0001" and undone["value"] == "merger"
    current = store.current("tiny", user="ana")
    assert current[["object_id", "value"]].values.tolist() == [["tiny-0001", "spiral"]]
    assert store.undo_last("tiny", user="ana")["value"] == "spiral"
    assert store.current("tiny", user="ana").empty
    assert store.undo_last("tiny", user="ana") is None
    assert store.count("tiny", user="ben") == 1  # other users untouched
    events = store.events("tiny")
    assert events["source"].tolist().count("undo") == 2


@pytest.mark.parametrize(
    ("survey", "object_id", "value", "message"),
    [
        ("tiny", "tiny-0001", "blob", "unknown class 'blob'"),
        ("tiny", "nope", "spiral", "unknown object id 'nope'"),
        ("missing", "x", "spiral", "unknown survey 'missing'"),
        ("../etc", "x", "spiral", "invalid survey name"),
    ],
)
def test_bad_labels_are_refused_and_change_nothing(
    store: LabelStore, survey: str, object_id: str, value: str, message: str
) -> None:
    with pytest.raises(LabelError, match=message):
        store.add(survey, object_id, value, user="ana")
    assert store.events("tiny").empty


def test_user_is_required(store: LabelStore) -> None:
    with pytest.raises(LabelError, match="user must be"):
        store.add("tiny", "tiny-0001", "spiral", user="  ")


def test_labels_survive_a_new_process_view(store: LabelStore, home: Path) -> None:
    store.add("tiny", "tiny-0003", "lenticular", user="ana")
    fresh = LabelStore(engine=sa.create_engine(get_settings().database_url))  # its own engine
    assert fresh.current("tiny")["value"].tolist() == ["lenticular"]


def test_bulk_import_and_consensus(store: LabelStore) -> None:
    rows = pd.DataFrame(
        {
            "survey": ["tiny"] * 3,
            "object_id": ["tiny-0001", "tiny-0002", "tiny-0003"],
            "value": ["spiral", "spiral", "merger"],
        }
    )
    assert store.add_many(rows, user="gz", source="import") == 3
    store.add("tiny", "tiny-0001", "spiral", user="ana")
    store.add("tiny", "tiny-0002", "elliptical", user="ana")
    consensus = store.consensus("tiny").set_index("object_id")
    assert consensus.loc["tiny-0001", "agreement"] == 1.0
    assert consensus.loc["tiny-0001", "n_users"] == 2
    assert consensus.loc["tiny-0002", "agreement"] == 0.5
    bad = rows.assign(value=["spiral", "nonsense", "merger"])
    with pytest.raises(LabelError, match="nonsense"):
        store.add_many(bad, user="gz", source="import")
    assert store.count("tiny", user="gz") == 3  # the bad batch wrote nothing


def test_schemas_default_and_per_survey(tmp_path: Path) -> None:
    default = load_schema("tiny")
    assert default.names[:3] == ["elliptical", "lenticular", "spiral"]
    assert default.by_name["spiral"].key == "3"
    (tmp_path / "default.yaml").write_text("classes: [{name: a, key: '1'}]\n")
    (tmp_path / "mine.yaml").write_text(
        "task: lens\nclasses:\n  - {name: lens, key: '1', colour: red}\n  - {name: not, key: '2'}\n"
    )
    assert load_schema("mine", tmp_path).names == ["lens", "not"]
    assert load_schema("other", tmp_path).names == ["a"]
    (tmp_path / "bad.yaml").write_text("classes: [{name: a, key: '1'}, {name: b, key: '1'}]\n")
    with pytest.raises(SchemaError, match=r"bad\.yaml: classes\[1\] repeats key '1'"):
        read_schema(tmp_path / "bad.yaml")


def test_concurrent_undos_each_take_back_a_different_label(store: LabelStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for i in range(10):
        store.add("tiny", f"tiny-{i:04d}", "spiral", user="ana")
    with ThreadPoolExecutor(10) as pool:
        undone = list(pool.map(lambda _: store.undo_last("tiny", user="ana"), range(10)))
    assert sorted(u["object_id"] for u in undone) == [f"tiny-{i:04d}" for i in range(10)]
    assert store.count("tiny", user="ana") == 0
