"""``prepare --label-column C`` gives a new survey label classes that match what it trains.

Found on sdss_gz1 (prepared on ``gz1_label``): the classifier learnt dont_know, edge_on,
elliptical, merger, spiral_cw, spiral_acw while the Label view kept the default demo classes
(lenticular, barred_spiral, ...), so labels given in the browser could never teach or correct
it. ``prepare`` (and ``train classifier``) now write the column's classes as the survey's own
schema when it has none, and never touch a schema the user wrote or adopted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from backend.cli import main
from backend.labels import load_schema
from backend.labels.adopt import adopt_column_classes
from backend.labels.schema import make_schema, save_schema, user_schema_dir
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs

GZ1 = ["elliptical", "spiral_cw", "spiral_acw", "edge_on", "merger", "dont_know"]
PREPARE = [
    "prepare", "--survey", "tiny", "--quick", "--encoder-init", "scratch",
    "--label-column", "gz1_label", "--targets", "",
]  # fmt: skip


@pytest.fixture
def gz1_like(home: Path) -> Survey:
    """A small survey with a GZ1-like label column whose classes the default schema lacks."""
    n = 120
    rng = np.random.default_rng(0)
    catalog = pd.DataFrame(
        {
            "object_id": [f"tiny-{i:04d}" for i in range(n)],
            "ra": np.linspace(150.0, 150.5, n),
            "dec": np.linspace(2.0, 2.5, n),
            "gz1_label": rng.choice(GZ1, size=n, p=[0.5, 0.15, 0.15, 0.1, 0.05, 0.05]),
        }
    )
    with SurveyWriter("tiny", ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(make_blobs(n), catalog)
    return Survey.open("tiny")


def test_prepare_gives_the_survey_its_columns_classes_and_the_label_view_shows_them(
    gz1_like: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(PREPARE) == 0
    out = capsys.readouterr().out
    path = user_schema_dir() / "tiny.yaml"
    classifier = ModelRegistry().active("tiny", "classifier")
    assert classifier is not None
    trained = [str(c) for c in classifier.config["classes"]]
    assert sorted(trained) == sorted(GZ1)
    schema = load_schema("tiny")
    assert schema.source == str(path) and schema.names == trained  # the classifier's order
    assert [c.key for c in schema.classes] == list("123456")
    assert schema.mirror_symmetric and schema.mirror_pairs == ()  # nothing declared
    assert yaml.safe_load(path.read_text())["symmetries"] == {}
    assert "gz1_label" in out and str(path) in out  # prepare says what it wrote

    # the Label view's buttons are those classes, with no mismatch warning
    from app.data import load_survey_data
    from app.state import AppState
    from app.views.label import LabelView

    view = LabelView(data=load_survey_data("tiny"), state=AppState(survey="tiny", user="ana"))
    assert view.schema.names == trained
    assert [b.name.split(" · ")[-1].replace(" ", "_") for b in view._buttons] == trained
    assert not view._mismatch_box.visible

    # the user declares the mirror pair by hand; a second prepare and a retrain keep it
    text = path.read_text().replace(
        "symmetries: {}", "symmetries: {mirror: {spiral_cw: spiral_acw}}"
    )
    path.write_text(text)
    assert load_schema("tiny").mirror_pairs == (("spiral_cw", "spiral_acw"),)
    assert main(PREPARE) == 0
    assert "label classes from 'gz1_label': present" in capsys.readouterr().out
    args = ["train", "classifier", "--survey", "tiny", "--label-column", "gz1_label"]
    assert main([*args, "--epochs", "2"]) == 0
    assert "keeps its own label schema" in capsys.readouterr().out
    assert path.read_text() == text


def test_a_schema_the_user_wrote_is_never_overwritten(
    gz1_like: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    own = save_schema("tiny", make_schema(["elliptical", "spiral"]))
    before = own.read_bytes()
    adoption = adopt_column_classes("tiny", GZ1, "gz1_label")
    assert adoption.path is None and own.read_bytes() == before
    assert load_schema("tiny").names == ["elliptical", "spiral"]
    # it says which of the column's classes labels given in the app cannot teach
    assert "spiral_cw" in adoption.message and "labels schema" in adoption.message


def test_the_default_is_kept_when_it_holds_every_class_and_bad_names_write_nothing(
    gz1_like: Survey,
) -> None:
    path = user_schema_dir() / "tiny.yaml"
    default = load_schema("tiny").names
    kept = adopt_column_classes("tiny", default[:3], "true_class")  # the demo's case
    assert kept.path is None and not path.exists() and "default" in kept.message
    bad = adopt_column_classes("tiny", ["Spiral (CW)", "elliptical"], "odd")
    assert bad.path is None and not path.exists()
    assert "'odd'" in bad.message and "Spiral (CW)" in bad.message
    many = adopt_column_classes("tiny", [f"c{i}" for i in range(11)], "many")
    assert many.path is None and not path.exists() and "at most 10" in many.message


def test_atomic_create_never_replaces_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    from backend.atomic import atomic_create

    path = tmp_path / "label_schemas" / "gz1.yaml"
    assert atomic_create(path, lambda tmp: tmp.write_text("first"))
    assert not atomic_create(path, lambda tmp: tmp.write_text("second"))
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["gz1.yaml"]  # no temporary file left
