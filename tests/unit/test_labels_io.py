"""Label import/export, Galaxy Zoo style vote fractions, agreement between users, schemas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from sklearn.metrics import cohen_kappa_score

from backend.cli import main
from backend.labels import LabelError, LabelStore, load_schema
from backend.labels.agreement import agreement_report
from backend.labels.schema import SchemaError, make_schema, save_schema
from backend.survey import Survey


@pytest.fixture
def store(tiny_survey: Survey) -> LabelStore:
    return LabelStore()


def votes_frame(ids: list[str], spiral: list[float], elliptical: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"object_id": ids, "spiral": spiral, "elliptical": elliptical})


def test_vote_fractions_are_normalised_and_enter_the_consensus(store: LabelStore) -> None:
    n = store.import_votes(
        "tiny", votes_frame(["tiny-0001", "tiny-0002"], [30, 2], [10, 8]), source="gz"
    )
    assert n == 2
    soft = store.soft_labels("tiny").set_index("object_id")
    assert soft.loc["tiny-0001", "spiral"] == pytest.approx(0.75)
    assert soft.loc["tiny-0002", "elliptical"] == pytest.approx(0.8)
    assert soft.loc["tiny-0001"].sum() == pytest.approx(1.0)  # every schema class, zeros too
    consensus = store.consensus("tiny").set_index("object_id")
    assert consensus.loc["tiny-0001", "value"] == "spiral"
    assert consensus.loc["tiny-0001", "agreement"] == pytest.approx(0.75)
    # a human label outweighs a split vote (one labeller each; weight 1 vs 0.75)
    store.add("tiny", "tiny-0001", "merger", user="ana")
    assert store.consensus("tiny").set_index("object_id").loc["tiny-0001", "value"] == "merger"
    assert store.count("tiny") == 1  # votes are not hard labels


def test_reimporting_votes_replaces_the_fractions_without_deleting(store: LabelStore) -> None:
    store.import_votes("tiny", votes_frame(["tiny-0001"], [0.5], [0.5]), source="gz")
    store.import_votes("tiny", votes_frame(["tiny-0001"], [0.2], [0.8]), source="gz")
    soft = store.soft_labels("tiny").set_index("object_id")
    assert soft.loc["tiny-0001", "elliptical"] == pytest.approx(0.8)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from label_votes").scalar() == 4


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (votes_frame(["tiny-0001", "nope"], [1, 1], [0, 0]), "not in survey tiny: nope"),
        (votes_frame(["tiny-0001"], [0], [0]), "all fractions are 0"),
        (votes_frame(["tiny-0001"], [-0.5], [1]), "negative fractions"),
        (votes_frame(["tiny-0001"], [float("nan")], [1]), "non-numeric or missing"),
        (votes_frame(["tiny-0001", "tiny-0001"], [1, 1], [0, 0]), "repeated"),
        (pd.DataFrame({"object_id": ["tiny-0001"], "blob": [1.0]}), "unknown class column"),
    ],
)
def test_bad_vote_fractions_are_refused_and_nothing_is_written(
    store: LabelStore, frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(LabelError, match=message):
        store.import_votes("tiny", frame, source="gz", where="gz.csv")
    assert store.votes("tiny").empty


def test_cli_imports_labels_with_a_user_column_and_exports_them(
    store: LabelStore, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "labels.csv"
    pd.DataFrame({
        "id": ["tiny-0003", "tiny-0004", "tiny-0003"],
        "morph": ["spiral", "elliptical", "merger"],
        "who": ["ana", "ana", "ben"],
    }).to_csv(src, index=False)  # fmt: skip
    args = ["labels", "import", str(src), "--survey", "tiny", "--id-column", "id"]
    assert main([*args, "--value-column", "morph", "--user-column", "who"]) == 0
    current = store.current("tiny")
    assert sorted(map(tuple, current[["user", "object_id", "value"]].to_numpy())) == [
        ("ana", "tiny-0003", "spiral"), ("ana", "tiny-0004", "elliptical"),
        ("ben", "tiny-0003", "merger"),
    ]  # fmt: skip
    assert set(current["source"]) == {"import"}
    for suffix in (".csv", ".parquet", ".fits"):
        out = tmp_path / f"export{suffix}"
        assert main(["labels", "export", "--survey", "tiny", "--out", str(out)]) == 0
        back = Table.read(out).to_pandas() if suffix == ".fits" else (
            pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        )  # fmt: skip
        values = back["value"].map(lambda v: v.decode() if isinstance(v, bytes) else v)
        assert sorted(values) == ["elliptical", "merger", "spiral"]
    assert "wrote 3 row(s)" in capsys.readouterr().out


def test_cli_import_refuses_a_bad_file_and_writes_nothing(
    store: LabelStore, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "labels.csv"
    pd.DataFrame({"object_id": ["tiny-0003", "tiny-0004"], "value": ["spiral", "blob"]}).to_csv(
        src, index=False
    )
    assert main(["labels", "import", str(src), "--survey", "tiny", "--user", "ana"]) == 2
    assert "unknown class(es) ['blob']" in capsys.readouterr().err
    assert main(["labels", "import", str(src), "--survey", "tiny"]) == 2  # no user
    assert "--user" in capsys.readouterr().err
    missing = tmp_path / "nothing.csv"
    assert main(["labels", "import", str(missing), "--survey", "tiny", "--user", "a"]) == 2
    assert "nothing.csv: no such file" in capsys.readouterr().err
    assert store.count("tiny") == 0


def test_galaxy_zoo_votes_join_by_sky_position(
    store: LabelStore, tiny_survey: Survey, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cat = tiny_survey.catalog.iloc[[5, 6, 7]]
    gz = pd.DataFrame({
        "RA": cat["ra"].to_numpy() + 0.3 / 3600,  # 0.3 arcsec off
        "DEC": cat["dec"].to_numpy(),
        "t01_smooth_frac": [0.9, 0.2, 0.5],
        "t01_features_frac": [0.1, 0.8, 0.5],
        "n_votes": [40, 35, 12],
    })  # fmt: skip
    gz.loc[3] = [10.0, -5.0, 1.0, 0.0, 10]  # far from every object: not matched
    path = tmp_path / "gz2.fits"
    Table.from_pandas(gz).write(path)
    argv = [
        "labels", "import-votes", str(path), "--survey", "tiny", "--source", "gz2",
        "--map", "elliptical=t01_smooth_frac,spiral=t01_features_frac",
        "--match-radius", "1.0", "--votes-column", "n_votes",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "4 rows in the file, 3 matched" in capsys.readouterr().out
    votes = store.votes("tiny")
    assert set(votes["source"]) == {"gz2"}
    soft = store.soft_labels("tiny").set_index("object_id")
    assert soft.loc[cat["object_id"].iat[1], "spiral"] == pytest.approx(0.8)
    assert sorted(votes["n_votes"].unique()) == [12, 35, 40]
    out = tmp_path / "soft.csv"
    assert main(["labels", "export", "--survey", "tiny", "--out", str(out), "--what", "votes"]) == 0
    assert len(pd.read_csv(out)) == 3


def test_agreement_matches_cohens_kappa_and_is_perfect_for_identical_users() -> None:
    rng = np.random.default_rng(0)
    classes = np.array(["spiral", "elliptical", "merger"])
    truth = rng.choice(classes, 200)
    noisy = np.where(rng.random(200) < 0.3, rng.choice(classes, 200), truth)
    ids = [f"o{i}" for i in range(200)]
    answers = pd.concat([
        pd.DataFrame({"object_id": ids, "user": "ana", "value": truth}),
        pd.DataFrame({"object_id": ids, "user": "ben", "value": truth}),
        pd.DataFrame({"object_id": ids[:150], "user": "cat", "value": noisy[:150]}),
    ])  # fmt: skip
    report = agreement_report(answers)
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
    assert pairs["ana", "ben"]["cohen_kappa"] == pytest.approx(1.0)
    assert pairs["ana", "cat"]["common"] == 150
    expected = cohen_kappa_score(truth[:150], noisy[:150])
    assert pairs["ana", "cat"]["cohen_kappa"] == pytest.approx(expected)
    assert 0.5 < report["krippendorff_alpha"] < 1.0
    assert report["labellers"] == {"ana": 200, "ben": 200, "cat": 150}


def test_store_agreement_counts_vote_sources_as_labellers(store: LabelStore) -> None:
    ids = [f"tiny-{i:04d}" for i in range(10)]
    for i, oid in enumerate(ids):
        store.add("tiny", oid, "spiral" if i % 2 else "elliptical", user="ana")
    store.import_votes(
        "tiny", votes_frame(ids, [i % 2 for i in range(10)], [1 - i % 2 for i in range(10)]),
        source="gz",
    )  # fmt: skip
    report = store.agreement("tiny")
    assert report["pairs"] == [
        {"a": "ana", "b": "votes:gz", "common": 10, "agreement": 1.0, "cohen_kappa": 1.0}
    ]
    assert LabelStore().agreement("tiny")["objects_with_2_or_more"] == 10


def test_schema_made_by_a_user_is_saved_in_the_data_root(
    tiny_survey: Survey, home: Path, capsys: pytest.CaptureFixture
) -> None:
    assert load_schema("tiny").names[0] == "elliptical"  # the default schema
    assert main(["labels", "schema", "--survey", "tiny", "--classes", "star,galaxy,qso"]) == 0
    assert "[2] galaxy" in capsys.readouterr().out
    schema = load_schema("tiny")
    assert schema.names == ["star", "galaxy", "qso"]
    assert (home / "label_schemas" / "tiny.yaml").is_file()
    assert [c.key for c in schema.classes] == ["1", "2", "3"]
    with pytest.raises(SchemaError, match="at least two"):
        make_schema(["only"])
    with pytest.raises(SchemaError, match="letters, digits"):
        make_schema(["a b", "c"])
    with pytest.raises(SchemaError, match="unique"):
        save_schema("tiny", make_schema(["a", "a"]))
    assert load_schema("tiny").names == ["star", "galaxy", "qso"]  # unchanged by the failure
