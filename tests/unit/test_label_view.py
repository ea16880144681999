"""The Label view from params (issue 13), in-process on the tiny survey: the band and the object
shown are params that drive the cutout; label, skip, undo, a "label it" request and a collection
move ``current`` and the counts; every pane follows its params (acknowledgement, progress, why,
retrain notice, neighbours); the keys label; hostile strings stay text."""

from __future__ import annotations

import time

import panel as pn
import pytest

from app.data import SurveyData, load_survey_data
from app.labelling import label_store
from app.state import AppState
from backend.survey import Survey


@pytest.fixture
def data(tiny_survey: Survey) -> SurveyData:
    from backend.latent.pipeline import make_index
    from backend.latent.service import clear_cache
    from tests.unit.test_latent_query import add_encoder

    add_encoder(tiny_survey)
    make_index("tiny")
    clear_cache()
    return load_survey_data("tiny")


def _view(data: SurveyData, user: str = "ana"):
    from app.views.label import LabelView

    return LabelView(data=data, state=AppState(survey="tiny", user=user))


def test_band_and_current_object_drive_the_cutout(data: SurveyData) -> None:
    view = _view(data)
    assert view.param.band.objects == ["colour", *data.survey.bands]
    assert list(view.band_choice.options) == view.param.band.objects
    first = view.current
    assert first is not None and view.queue.current() == first
    assert view._stage.object_id == data.object_id(first)
    assert view._stage.url == data.thumb(first, 256)
    assert len(view._stage.prefetch) == 2

    band = data.survey.bands[1]
    view.band_choice.value = band  # the user's choice: the param and the picture follow
    assert view.band == band and view._stage.url == data.thumb(first, 256, band)
    view.band = "colour"  # set in code: the widget follows
    assert view.band_choice.value == "colour" and view._stage.url == data.thumb(first, 256)

    view.current = 17  # any object can be shown: the cutout, caption and why follow
    assert view._stage.object_id == "tiny-0017" and "row 17" in view._stage.caption
    view._refresh_text()  # what the slower parts after an action do
    assert view.described == 17 and view._why.object == view.why_text()


def test_label_skip_undo_move_current_and_the_panes_follow(data: SurveyData) -> None:
    view = _view(data)
    name = view.schema.names[0]
    first = view.current
    view.give(name)
    stored = label_store().current("tiny", task=view.schema.task)
    assert stored["object_id"].tolist() == [data.object_id(first)]
    assert view.current not in (None, first)
    assert (view.session_count, view.labelled_total) == (1, 1)
    assert "✓ stored" in view._ack.object and data.object_id(first) in view._ack.object
    assert "<b>1</b> labelled by you" in view._progress.object
    assert "<b>1</b> labelled objects" in view._progress.object

    second = view.current
    view.skip()
    assert view.current not in (None, first, second)
    assert "skipped" in view._ack.object and data.object_id(second) in view._ack.object
    assert view.session_count == 1

    view.undo()  # the label is taken back in the store, and its object is shown again
    assert view.current == first
    assert (view.session_count, view.labelled_total) == (0, 0)
    assert label_store().current("tiny", task=view.schema.task).empty
    assert "↶ undid" in view._ack.object
    view.undo()
    assert "nothing to undo" in view._ack.object

    key = view.schema.classes[1].key
    view._on_key(key)  # a number key labels the object shown with that class
    assert label_store().current("tiny")["value"].tolist() == [view.schema.names[1]]
    assert view.session_count == 1 and view.current != first


def test_requests_from_other_views_and_the_retrain_notice(data: SurveyData) -> None:
    view = _view(data)
    view.state.label_from = 99  # "label it" from the details panel: shown at once
    assert view.current == 99 and view._stage.object_id == "tiny-0099"
    view.state.label_list = [5, 6, 7]  # a collection: its objects in order
    order = []
    for _ in range(3):
        order.append(view.current)
        view.skip()
    assert order == [5, 6, 7]

    gate = view._gate_notice
    assert not gate.visible and gate.object == ""
    view.state.retrain_news = "classifier <code>v0002</code> was not activated"
    assert gate.visible and "v0002" in gate.object and "lsa-gate" in gate.object
    view.state.retrain_news = ""
    assert not gate.visible


def test_neighbours_are_a_param_the_gallery_shows(data: SurveyData) -> None:
    from app.views.label import NEIGHBOURS

    view = _view(data)
    assert len(view.neighbours) == NEIGHBOURS
    assert view._neighbours.items == view.neighbours
    assert data.object_id(view.current) not in [item["id"] for item in view.neighbours]
    first, neighbour = view.current, view.neighbours[0]
    assert neighbour["sub"].startswith("#1 · sim ") and "labelled" not in neighbour["sub"]

    view.state.label_from = neighbour["index"]  # label the nearest neighbour ...
    assert view.current == neighbour["index"]
    view.give(view.schema.names[0])
    view.state.label_from = first  # ... back to the first object: it reads labelled
    assert view.current == first
    again = next(i for i in view.neighbours if i["index"] == neighbour["index"])
    assert again["sub"].endswith(f"labelled {view.schema.names[0]}")
    assert again["colour"] == view.schema.classes[0].colour
    assert view._neighbours.items == view.neighbours


def test_hostile_user_name_and_text_stay_text(data: SurveyData) -> None:
    from app.views.label import neighbour_items, why_html

    view = _view(data, user="<img src=x onerror=alert(1)>")
    view.give(view.schema.names[0])
    layout = view.__panel__()
    texts = [str(p.object) for p in layout.select(pn.pane.HTML)]
    assert "&lt;img src=x" in view._ack.object
    assert not any("<img src=x" in t for t in texts)
    import pandas as pd

    row = pd.Series({"pred_class": "<script>x</script>", "pred_confidence": 0.5})
    assert "<script>" not in why_html(row, "<b>r</b>")
    result = pd.DataFrame(
        {"index": [1], "object_id": ["<i>o</i>"], "rank": [1], "similarity": [0.9]}
    )
    items = neighbour_items(result, {}, view.schema, lambda i: f"/t/{i}")
    assert items[0]["id"] == "<i>o</i>" and items[0]["sub"] == "#1 · sim 0.900"


def test_the_queue_strategy_is_a_param_that_rebuilds_the_queue(data: SurveyData) -> None:
    from backend.active.acquisition import DEFAULT_STRATEGY, STRATEGIES

    view = _view(data)
    assert view.strategy == DEFAULT_STRATEGY and view.queue.backend.strategy == DEFAULT_STRATEGY
    assert list(view.strategy_choice.options) == list(STRATEGIES) and view.strategy_choice.visible
    labelled = view.current
    view.give(view.schema.names[0])
    view.strategy_choice.value = "random"  # the user's choice: a queue by that strategy
    assert view.strategy == "random" and view.queue.backend.strategy == "random"
    assert view.current is not None and view.current != labelled  # labelled objects stay out
    assert view._stage.object_id == data.object_id(view.current)
    assert "queue: " in view._why.object


def test_buttons_lacking_the_classifiers_classes_warn_and_adopt_them(data: SurveyData) -> None:
    """A survey prepared on a catalog column (sdss_gz1: elliptical, edge_on, spiral_cw, ...)
    kept the default label classes (lenticular, barred spiral, ...): labels given with them
    could never teach the classifier its own classes. The view says which are missing and one
    click makes the classifier's classes the survey's, for every user."""
    from backend.registry import ModelRegistry

    classes = ["elliptical", "edge_on", "spiral_cw", "spiral_acw", "merger"]
    registry = ModelRegistry()
    version = registry.save("classifier", {}, {"classes": classes}, survey="tiny")
    registry.set_active("tiny", "classifier", version.version)
    view = _view(data)
    missing = [c for c in classes if c not in view.schema.names]
    assert missing, "the default classes already hold every class of this test"
    assert view._mismatch_box.visible
    warning = view._mismatch.object
    assert all(c in warning for c in missing) and "Use the classifier" in warning
    view._adopt.clicks += 1  # the button: the buttons become the classifier's classes
    deadline = time.monotonic() + 10
    while view.schema.names != classes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert view.schema.names == classes
    assert [b.name.split(" · ")[-1].replace(" ", "_") for b in view._buttons] == classes
    assert not view._mismatch_box.visible and view._mismatch.object == ""
    assert _view(data).schema.names == classes  # saved in the data root: every view has them
    assert not _view(data)._mismatch_box.visible
