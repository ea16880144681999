"""A survey whose label schema declares anomaly classes: its labelled anomalies outside the stored
validation split choose how the stored anomaly ranking combines its scorers, the record says
so, and a new label makes the ranking outdated."""

from __future__ import annotations

import numpy as np
import pytest

from backend.cli import main
from backend.labels.schema import load_schema
from backend.labels.store import LabelStore
from backend.latent.anomaly import AnomalyRanker, combine
from backend.latent.combination import CANDIDATES, LIKENESS_CANDIDATES, MIN_POSITIVES
from backend.latent.source import ANOMALY_FILE, latent_dir
from backend.pipeline.kinds import Target
from backend.pipeline.lineage import read_lineage
from backend.pipeline.planner import plan
from backend.pipeline.runner import ensure
from backend.survey import Survey
from backend.validation import stored_assignments

ODD = [f"tiny-{i:04d}" for i in range(0, 150, 10)]  # 15 objects labelled as the anomaly class
NORMAL = [f"tiny-{i:04d}" for i in range(1, 150, 5)]  # 30 ordinary ones


def test_labelled_anomalies_choose_the_stored_combination(
    tiny_survey: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.modelling import train

    assert main(["labels", "schema", "--survey", "tiny", "--classes", "normal,odd"]) == 0
    assert main(["labels", "schema", "--survey", "tiny", "--anomalies", "odd,ring"]) == 2
    assert "'ring' is not a class of the schema (normal, odd)" in capsys.readouterr().err
    assert load_schema("tiny").anomalies == ()
    assert main(["labels", "schema", "--survey", "tiny", "--anomalies", "odd"]) == 0
    assert "[2] odd  #f58518  (anomaly)" in capsys.readouterr().out
    store = LabelStore()
    for object_id in ODD[:-1]:
        store.add("tiny", object_id, "odd", user="ana")
    for object_id in NORMAL:
        store.add("tiny", object_id, "normal", user="ana")
    encoder = train.train_encoder(
        "tiny", init="scratch", steps=2, batch_size=32, progress_bar=False
    )
    ensure("tiny", ["embeddings", "index", "scores"], "sync")

    target = Target("scores", "tiny", "encoder", encoder.version)
    table = AnomalyRanker.load(latent_dir("tiny", encoder.version) / ANOMALY_FILE).scores
    choice = table.attrs["combination"]
    split = stored_assignments("tiny", "class").set_index("object_id")["split"]
    held_out = [o for o in ODD[:-1] if split[o] == "val"]
    assert len(split) == len(ODD) - 1 + len(NORMAL)  # every labelled object assigned first
    assert 1 <= len(held_out) <= 4
    assert choice["labels"] == {
        "task": "class", "classes": ["odd"], "sources": "label_store",
        "n_positive": 14, "n_positive_held_out": len(held_out), "n_held_out": int((split == "val").sum()),
    }  # fmt: skip
    assert choice["n_positive"] == 14 - len(held_out)
    # with >= MIN_POSITIVES outside the val rows, likeness is scored and its formulas compete
    candidates = CANDIDATES + (LIKENESS_CANDIDATES if choice["n_positive"] >= MIN_POSITIVES else ())
    assert ("likeness" in table) == (choice["n_positive"] >= MIN_POSITIVES)
    assert choice["formula"] in candidates
    assert set(choice["average_precision"]) == set(candidates)
    names = [s for s in ("iforest", "knn", "sharpness", "asymmetry", "likeness") if s in table]
    raw = {s: table[f"{s}_raw"].to_numpy() for s in names}
    np.testing.assert_array_equal(table["rank"], combine(raw, how=choice["formula"])["rank"])

    note = _anomalies_note()  # the Anomalies view says what chose the combination
    assert f"Scorers combined by <code>{choice['formula']}</code>" in note
    assert f"{choice['n_positive']:,} labelled anomalies (odd) best; {len(held_out)} more" in note

    record = read_lineage(target)
    assert record["inputs"]["anomaly_labels"]
    assert not plan("tiny", ["scores"]).todo
    store.add("tiny", ODD[-1], "odd", user="ana")  # one more labelled anomaly
    item = plan("tiny", ["scores"]).items[target.key]
    assert item.status == "outdated" and "anomaly_labels" in item.reason.replace(" ", "_")

    # a schema without anomaly classes: the product's default ranking again
    assert main(["labels", "schema", "--survey", "tiny", "--anomalies", ""]) == 0
    ensure("tiny", ["scores"], "sync")
    table = AnomalyRanker.load(latent_dir("tiny", encoder.version) / ANOMALY_FILE).scores
    assert "combination" not in table.attrs and "iforest" not in table and "likeness" not in table
    assert read_lineage(target)["inputs"]["anomaly_labels"] is None
    assert "Scorers combined" not in _anomalies_note()


def _anomalies_note() -> str:
    from app.data import load_survey_data
    from app.state import AppState
    from app.views.anomalies import AnomaliesView
    from backend.latent.service import clear_cache

    clear_cache()
    view = AnomaliesView(data=load_survey_data("tiny"), state=AppState(survey="tiny", user="ana"))
    return str(view._ranking_note.object)


def test_the_evaluation_report_follows_the_stored_scores(tiny_survey: Survey) -> None:
    from tests.unit.test_pipeline_app_cache import add_encoder

    params = {"evaluation": {"label_column": "size_class", "baselines": [], "rare": ["big"]}}
    encoder = add_encoder(tiny_survey, 1.0)
    ensure("tiny", ["scores", "evaluation"], "sync", params=params)
    report = Target("evaluation", "tiny", "task", "class")
    scores = Target("scores", "tiny", "encoder", encoder)
    assert read_lineage(report)["inputs"]["scores"] == read_lineage(scores)["content_hash"]
    assert not plan("tiny", ["scores", "evaluation"], params=params).todo
    ensure("tiny", ["scores"], "sync", params={"scores": {"scorers": ["knn"]}})  # remade
    item = plan("tiny", ["evaluation"], params=params).items[report.key]
    assert item.status == "outdated" and "its scores changed" in item.reason
    ensure("tiny", ["evaluation"], "sync", params=params)
    assert read_lineage(report)["inputs"]["scores"] == read_lineage(scores)["content_hash"]
    assert (
        "| stored anomaly product (`score`: knn) |" in (report.directory / "report.md").read_text()
    )


def test_the_report_names_each_stored_combination_and_what_chose_it() -> None:
    from backend.evaluation.report import render_markdown

    def rep(name: str, stored: dict) -> dict:
        anomaly = {"n_rare": 171, "recall_at_100": 0.3, "val_k": 20, "val_recall": 0.2}
        return {"name": name, "anomaly": {**anomaly, "val_n_rare": 34, "stored": stored}}

    plain = {"recall_at_100": 0.2, "scorers": ["recon", "knn"], "combination": "mean"}
    chosen = {
        "recall_at_100": 0.351, "val_recall": 0.265, "scorers": ["iforest", "knn", "asymmetry"],
        "combination": "mean(iforest,knn,asymmetry)", "chosen_by": 137,
    }  # fmt: skip
    text = render_markdown(
        {"survey": "gz1", "task": "class", "rare": ["merger"],
         "representations": [rep("encoder v0003", plain), rep("encoder v0018", chosen)]}
    )  # fmt: skip
    assert "| stored anomaly product (`score`; combination below) | 0.200 | 0.351 |" in text
    assert "| stored anomaly product, val rows only (recall@20) | – | 0.265 |" in text
    assert (
        "Stored rankings: encoder v0003: mean of recon, knn; encoder v0018: "
        "mean(iforest,knn,asymmetry), chosen by 137 labelled anomalies outside the val rows."
    ) in text
