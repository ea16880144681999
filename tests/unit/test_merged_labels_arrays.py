"""Every label source of a task merged with array operations (no Python work per object) gives
what the per-object merge gave: catalog columns in order, the label store over them, classes in
schema order then the rest; the survey's labelled anomalies read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backend.active.loop import merged_labels, store_labels
from backend.cli import main
from backend.labels.schema import load_schema
from backend.labels.store import LabelStore
from backend.latent.labelled import labelled_anomalies
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs

N = 120


def _reference(survey: str, store: LabelStore, columns: list[str]) -> tuple[np.ndarray, list]:
    """The per-object merge this replaced (and catalog_labels' per-object text, as it was)."""
    s = Survey.open(survey)
    store_y, store_classes, _ = store_labels(survey, store, "class")
    names = np.full(len(s), None, dtype=object)
    for column in columns:
        values = s.catalog[column]
        present = values.notna() & (values.astype(str).str.strip() != "")
        classes = sorted(values[present].astype(str).unique())
        y = np.full(len(values), -1, np.int64)
        y[present.to_numpy()] = values[present].astype(str).map(classes.index).to_numpy()
        names[y >= 0] = np.asarray(classes, dtype=object)[y[y >= 0]]
    names[store_y >= 0] = np.asarray(store_classes, dtype=object)[store_y[store_y >= 0]]
    present_names = {n for n in names if n is not None}
    schema = [c for c in load_schema(survey).names if c in present_names]
    classes = schema + sorted(present_names - set(schema))
    labels = np.array([classes.index(n) if n is not None else -1 for n in names], np.int64)
    return labels, classes


def test_merged_labels_match_the_per_object_merge(home: Path) -> None:
    rng = np.random.default_rng(4)
    kinds = np.array(["spiral", "elliptical", "merger", "", " ", None, "artefact"], dtype=object)
    ids = [f"m-{i:04d}" for i in range(N)]
    catalog = pd.DataFrame(
        {
            "object_id": ids, "ra": np.linspace(10, 11, N), "dec": np.linspace(0, 1, N),
            "gz": kinds[rng.integers(0, len(kinds), N)],
            "vote": rng.choice([1.0, 2.0, np.nan], N),  # a numeric column: "1.0", "2.0"
        }
    )  # fmt: skip
    with SurveyWriter("m", ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(make_blobs(N), catalog)
    assert main(["labels", "schema", "--survey", "m", "--classes", "merger,spiral,ring"]) == 0
    assert main(["labels", "schema", "--survey", "m", "--anomalies", "merger,ring"]) == 0
    store = LabelStore()
    for i in rng.choice(N, 30, replace=False):  # a person's labels win over the catalog's
        store.add("m", ids[i], str(rng.choice(["ring", "spiral", "merger"])), user="ana")
    for columns in (["gz"], ["gz", "vote"], ["vote", "gz"], []):
        labels, classes, snapshot = merged_labels("m", store, "class", columns)
        expected, expected_classes = _reference("m", store, columns)
        assert classes == expected_classes
        np.testing.assert_array_equal(labels, expected)
        assert snapshot["n_labelled"] == int((expected >= 0).sum())
    assert classes[:3] == ["merger", "spiral", "ring"]  # schema order first

    found = labelled_anomalies(Survey.open("m"), persist=False)  # store labels only
    wanted = [classes.index("merger"), classes.index("ring")]
    np.testing.assert_array_equal(found.positive, np.isin(labels, wanted))
    assert found.held_out.sum() >= 1 and not (found.held_out & (labels < 0)).any()
