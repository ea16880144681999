"""Models & jobs built from params (issue 13): the picked version is a typed param whose
widget, details and activation button follow it; the registry's versions and active pointers
are params re-read by ``refresh_versions``; the label summary is drawn again once per change,
when the tab is shown. In-process on the tiny survey."""

from __future__ import annotations

import holoviews.plotting.bokeh  # noqa: F401  (options of the figures)
import panel as pn
import pytest

from app.data import load_survey_data
from app.labelling import label_store, schema_for
from app.state import AppState
from app.views.models import ModelsView, version_details, version_options
from backend.registry import ModelRegistry
from backend.survey import Survey


def _text(panes: list) -> str:
    return " ".join(str(getattr(p, "object", "")) for p in panes)


@pytest.fixture
def registry(tiny_survey: Survey) -> ModelRegistry:
    reg = ModelRegistry()
    first = reg.save("classifier", {}, {"classes": ["a", "b"]}, survey="tiny",
                     metrics={"accuracy": 0.71})  # fmt: skip
    reg.save("classifier", {}, {"classes": ["a", "b"]}, survey="tiny",
             metrics={"accuracy": 0.83}, parent=first.version)  # fmt: skip
    reg.set_active("tiny", "classifier", first.version)
    return reg


def test_the_picked_version_drives_the_picker_details_and_activation(
    registry: ModelRegistry,
) -> None:
    view = ModelsView(data=load_survey_data("tiny"), state=AppState(survey="tiny"))
    assert view.version == "classifier/v0001"  # the active classifier first
    assert view.pick.options == version_options(view.versions, view.active)
    assert "classifier v0001 (active)" in view.pick.options
    assert view.activate.name == "Active" and view.activate.disabled
    assert "0.71" in _text(view.details().objects)

    view.pick.value = "classifier/v0002"  # the user picks the widget: the param follows
    assert view.version == "classifier/v0002"
    assert "0.83" in _text(view.details().objects)
    assert view.activate.name == "Activate this version" and not view.activate.disabled
    assert any(isinstance(p, pn.GridBox) for p in view.details().objects)  # learning curve

    registry.set_active("tiny", "classifier", "v0002")  # e.g. a job activated it
    view.refresh_versions()
    assert view.active == {"classifier": "v0002"} and view.version == "classifier/v0002"
    assert "classifier v0002 (active)" in view.pick.options
    assert view.activate.name == "Active" and view.activate.disabled
    assert list(view.table["version"]) == ["v0002", "v0001"]  # the active one first


def test_details_of_no_version_and_a_first_round() -> None:
    assert "No model versions" in _text(version_details(None, [], False))


def test_the_label_summary_is_drawn_once_per_change_when_the_tab_is_shown(
    registry: ModelRegistry,
) -> None:
    state = AppState(survey="tiny", tab="explore")
    view = ModelsView(data=load_survey_data("tiny"), state=state)
    assert "**0 labels**" in _text(view.labels().objects)
    schema = schema_for("tiny")
    label_store().add("tiny", "tiny-0001", schema.names[0], user="ada", task=schema.task)
    state.labelled("tiny-0001")
    state.labelled("tiny-0001")
    assert view.labels_round == 0  # another tab is shown: nothing drawn yet
    state.tab = "models"
    assert view.labels_round == 1  # drawn once for both changes
    assert "**1 labels** from 1 user(s)" in _text(view.labels().objects)
    state.labelled("tiny-0001")  # shown: drawn at once
    assert view.labels_round == 2
