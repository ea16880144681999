"""The retrain notice's count of new labels is net of undos and relabels, like the labelled count."""

from __future__ import annotations

import pytest

from backend.active.loop import labels_since_active
from backend.jobs.scheduling import maybe_schedule_retrain
from backend.labels.store import LabelStore


def test_undone_and_relabelled_labels_do_not_count(tiny_survey, monkeypatch) -> None:
    store = LabelStore()
    ids = tiny_survey.catalog["object_id"].to_numpy()
    for i in range(5):
        store.add("tiny", ids[i], "spiral", user="ana")
    store.undo_last("tiny", user="ana")  # 4 labelled, not 5
    store.add("tiny", ids[0], "elliptical", user="ana")  # a change of mind: still 4
    store.add("tiny", ids[0], "spiral", user="bo")  # another labeller: 5
    assert store.count("tiny") == 5
    assert labels_since_active("tiny", store) == store.count("tiny") == 5
    monkeypatch.setenv("LATENTSKY_RETRAIN_EVERY", "6")
    assert maybe_schedule_retrain("tiny", store=store) is None  # 7 events, 5 labels


@pytest.mark.parametrize("after", [0, 3])
def test_count_after_an_event(tiny_survey, after: int) -> None:
    store = LabelStore()
    ids = tiny_survey.catalog["object_id"].to_numpy()
    for i in range(4):
        store.add("tiny", ids[i], "spiral", user="ana")
    first = int(store.current("tiny")["id"].min())
    assert store.count("tiny", after=first - 1 + after) == 4 - after
