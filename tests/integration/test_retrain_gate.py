"""A retrain never silently makes the classifier worse (issue 9, R4).

Before the gate, the retrain job activated whatever it trained: labels that contradicted the
data replaced a good classifier by a worse one. Now a candidate is judged against the active
version on the task's stored validation split and only activated when it is not worse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.survey import SurveyWriter

CLASSES = ["elliptical", "spiral", "edge_on", "merger"]
N = 800


def _survey_with_embeddings(home: Path) -> np.ndarray:
    """An 800-object survey whose (encoder) embeddings form one tight cluster per class."""
    from backend.products import write_embeddings
    from backend.registry import ModelRegistry

    rng = np.random.default_rng(0)
    truth = rng.choice(len(CLASSES), N, p=[0.5, 0.25, 0.15, 0.10])
    centres = rng.normal(size=(len(CLASSES), 16)) * 3
    x = (centres[truth] + rng.normal(0, 1.0, (N, 16))).astype(np.float32)
    catalog = pd.DataFrame({"object_id": [f"g-{i:04d}" for i in range(N)]})
    with SurveyWriter("gated", ["g"], (8, 8), "test") as writer:
        writer.append(rng.normal(size=(N, 1, 8, 8)).astype(np.float32), catalog)
    write_embeddings("gated", "encoder", "v0001", x.shape, lambda out: out.__setitem__(..., x))
    registry = ModelRegistry()
    encoder = registry.save("encoder", {}, {"kind": "dummy"}, survey="gated")
    registry.set_active("gated", "encoder", encoder.version)
    return truth


def _label(store: object, truth: np.ndarray, rows: np.ndarray, wrong: bool = False) -> None:
    for i in rows:
        value = CLASSES[(truth[i] + 1) % len(CLASSES)] if wrong else CLASSES[truth[i]]
        store.add("gated", f"g-{i:04d}", value, user="ana")  # type: ignore[attr-defined]


@pytest.fixture
def first_round(home: Path) -> tuple[np.ndarray, str]:
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore

    truth = _survey_with_embeddings(home)
    _label(LabelStore(), truth, np.arange(100))
    result = retrain_classifier("gated", {"epochs": 40})
    assert result["activated"], result["reason"]
    return truth, result["version"]


def test_deliberately_wrong_labels_do_not_replace_the_active_classifier(first_round) -> None:
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore
    from backend.registry import ModelRegistry

    truth, good = first_round
    _label(LabelStore(), truth, np.arange(100, 150), wrong=True)
    result = retrain_classifier("gated", {"epochs": 40})
    registry = ModelRegistry()
    assert not result["activated"]
    assert registry.active_versions("gated")["classifier"] == good
    assert result["reason"].startswith("worse") and "validation objects" in result["reason"]
    gate = registry.get("classifier", result["version"]).gate
    assert gate["activate"] is False and gate["active"] == good
    assert gate["metrics"]["delta"]["balanced_accuracy"] < 0


def test_correct_labels_are_activated_without_losing_validation_accuracy(first_round) -> None:
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore
    from backend.registry import ModelRegistry

    truth, good = first_round
    _label(LabelStore(), truth, np.arange(100, 150))
    result = retrain_classifier("gated", {"epochs": 40})
    assert result["activated"], result["reason"]
    assert ModelRegistry().active_versions("gated")["classifier"] == result["version"] != good
    gate = ModelRegistry().get("classifier", result["version"]).gate
    scores = gate["metrics"]
    assert scores["candidate"]["balanced_accuracy"] >= scores["active"]["balanced_accuracy"] - 0.02


def test_a_person_can_still_activate_a_refused_version(first_round) -> None:
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore
    from backend.registry import ModelRegistry

    truth, _ = first_round
    _label(LabelStore(), truth, np.arange(100, 150), wrong=True)
    result = retrain_classifier("gated", {"epochs": 40, "force": True})
    assert result["activated"] and result["reason"].startswith("activated on request")
    assert ModelRegistry().active_versions("gated")["classifier"] == result["version"]


def test_a_retrain_never_loses_a_class_or_a_label_source(home: Path) -> None:
    """The active model learnt a catalog column: the retrain on a few labels keeps it."""
    from backend.active.loop import retrain_classifier
    from backend.labels import LabelStore
    from backend.modelling.infer import predict_version
    from backend.modelling.train import train_classifier
    from backend.survey import Survey

    truth = _survey_with_embeddings(home)
    catalog = Survey.open("gated").catalog
    catalog["morph"] = np.asarray(CLASSES, dtype=object)[truth]
    catalog.to_parquet(Path(home) / "surveys" / "gated" / "catalog.parquet", index=False)
    first = train_classifier("gated", label_column="morph", epochs=30, progress_bar=False)
    predict_version("gated", "classifier", first.version)
    _label(LabelStore(), truth, np.arange(20))  # a few labels, two classes at most
    result = retrain_classifier("gated", {"epochs": 30})
    snapshot = result_snapshot(result["version"])
    assert "catalog:morph" in snapshot["source"] and snapshot["n_labelled"] == N
    assert set(snapshot["class_counts"]) == set(CLASSES)
    assert result["activated"], result["reason"]


def result_snapshot(version: str) -> dict:
    from backend.registry import ModelRegistry

    return ModelRegistry().get("classifier", version).meta["training"]["labels"]
