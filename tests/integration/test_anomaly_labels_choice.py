"""A survey whose label schema declares anomaly classes: its labelled anomalies outside the stored
validation split choose how the stored anomaly ranking combines its scorers, the record says
so, and a new label makes the ranking outdated."""

from __future__ import annotations

import numpy as np

from backend.labels.schema import make_schema, save_schema
from backend.labels.store import LabelStore
from backend.latent.anomaly import AnomalyRanker, combine
from backend.latent.combination import CANDIDATES
from backend.latent.source import ANOMALY_FILE, latent_dir
from backend.pipeline.kinds import Target
from backend.pipeline.lineage import read_lineage
from backend.pipeline.planner import plan
from backend.pipeline.runner import ensure
from backend.survey import Survey
from backend.validation import stored_assignments

ODD = [f"tiny-{i:04d}" for i in range(0, 150, 10)]  # 15 objects labelled as the anomaly class
NORMAL = [f"tiny-{i:04d}" for i in range(1, 150, 5)]  # 30 ordinary ones


def test_labelled_anomalies_choose_the_stored_combination(tiny_survey: Survey) -> None:
    from backend.modelling import train

    schema = make_schema(["normal", "odd"])
    save_schema("tiny", type(schema)(task=schema.task, classes=schema.classes, anomalies=("odd",)))
    store = LabelStore()
    for object_id in ODD[:-1]:
        store.add("tiny", object_id, "odd", user="ana")
    for object_id in NORMAL:
        store.add("tiny", object_id, "normal", user="ana")
    encoder = train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
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
    assert choice["formula"] in CANDIDATES
    assert set(choice["average_precision"]) == set(CANDIDATES)
    raw = {s: table[f"{s}_raw"].to_numpy() for s in ("iforest", "knn", "sharpness", "asymmetry")}
    np.testing.assert_array_equal(table["rank"], combine(raw, how=choice["formula"])["rank"])

    record = read_lineage(target)
    assert record["inputs"]["anomaly_labels"]
    assert not plan("tiny", ["scores"]).todo
    store.add("tiny", ODD[-1], "odd", user="ana")  # one more labelled anomaly
    item = plan("tiny", ["scores"]).items[target.key]
    assert item.status == "outdated" and "anomaly_labels" in item.reason.replace(" ", "_")
