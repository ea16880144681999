"""Explore, Similar and the details panel are built from params (issue 13): each user choice is
a typed param its widget is made from, and what the views show follows the params whether the
user or code sets them. In-process on the tiny survey with a fake encoder's products."""

from __future__ import annotations

import dataclasses
import html

import holoviews.plotting.bokeh  # noqa: F401  (the map's options need the bokeh backend)
import numpy as np
import pytest

from app.state import AppState
from backend.survey import Survey


@pytest.fixture
def data(tiny_survey: Survey) -> object:
    from app import data as app_data
    from backend.latent.service import clear_cache
    from tests.integration.test_notebook import _products

    _products(tiny_survey)  # an active encoder, its index and anomaly scores
    app_data.clear_cache()
    clear_cache()
    loaded = app_data.load_survey_data("tiny")
    xy = np.random.default_rng(5).normal(0, 3, (2, len(loaded))).astype(np.float32)
    return dataclasses.replace(loaded, x=xy[0], y=xy[1])  # a map without UMAP's cost


def test_explore_colours_hovers_and_marks_from_its_params(data: object) -> None:
    from app.views.explore import HOVER_HINT, ExploreView

    state = AppState(survey="tiny", user="ana")
    view = ExploreView(data=data, state=state)
    keys = set(view.param.colour_by.objects)
    grouped = {v for group in view.colour.groups.values() for v in group.values()}
    assert grouped == keys and view.colour.value == view.colour_by
    assert view.drawn.spec.key == view.colour_by
    figure, server = view.figure, view._server_map

    view.colour_by = "catalog:size_class"  # set in code: the widget, map and legend follow
    assert view.colour.value == "catalog:size_class"
    assert view.drawn.spec.key == "catalog:size_class"
    assert "big <small>75</small>" in view._legend.object
    assert "small <small>75</small>" in view._legend.object
    assert view.figure is figure and view._server_map is server  # recoloured in place
    number = next(k for k, s in view._specs.items() if s.kind == "num")
    view.colour.value = number  # set by the user: the param follows
    assert view.colour_by == number and "mean per pixel" in view._legend.object
    assert view.figure is figure

    assert view._hover.object == HOVER_HINT
    i = 17
    view._on_pointer(float(data.x[i]), float(data.y[i]))  # the pointer over object 17
    assert view.hovered == data.nearest(float(data.x[i]), float(data.y[i]), 1.0)
    shown = view.hovered
    assert html.escape(data.object_id(shown)) in view._hover.object
    assert f"{view._specs[number].label}: " in view._hover.object
    view._on_pointer(1e6, 1e6)  # nowhere near an object
    assert view.hovered is None and "No object under the cursor" in view._hover.object

    state.pick(i)  # a pick anywhere marks it on the map
    np.testing.assert_allclose(view._pick_pipe.data, [[data.x[i], data.y[i]]])
    state.pick(None)
    assert view._pick_pipe.data.shape == (0, 2)


def test_explore_pure_builders_escape_and_describe() -> None:
    import pandas as pd

    from app.colouring import DENSITY
    from app.views.explore import Drawn, hover_html, legend_for, value_text

    hostile = "<script>x</script>"
    assert hostile not in hover_html(hostile, "t.png", hostile)
    assert "&lt;script&gt;" in hover_html(hostile, "t.png", "")
    assert legend_for(None) == "" and "objects per pixel" in legend_for(Drawn(DENSITY))
    table = pd.DataFrame({"pred_class": ["spiral", "elliptical"]})
    assert value_text(Drawn(DENSITY), table, 1) == "elliptical"


def test_the_details_follow_the_picked_object_and_its_labels(data: object) -> None:
    from app.detail import PLACEHOLDER, DetailPanel

    state = AppState(survey="tiny", user="ana")
    panel = DetailPanel(data=data, state=state)
    assert panel._body.object == PLACEHOLDER and panel.why == ""
    assert panel._similar.disabled and panel._label.disabled

    state.pick(7)
    assert data.object_id(7) in panel._body.object
    assert not panel._similar.disabled and not panel._label.disabled
    assert "lsd-explain" in panel._why.object  # an explanation, or one line saying why not

    seen = panel.labels_seen
    state.labelled(data.object_id(8))  # another object's labels: nothing to re-read
    assert panel.labels_seen == seen
    state.labelled(data.object_id(7))
    assert panel.labels_seen == seen + 1

    panel._similar.clicks += 1  # hands the object to Similar
    assert state.similar_from == 7 and state.tab == "similar"
    state.pick(10_000)  # not one of this survey's rows
    assert panel._body.object == PLACEHOLDER and panel._label.disabled and panel.why == ""


def test_similar_searches_marks_refines_and_clears_from_its_params(data: object) -> None:
    from app.views.similar import MODES, SimilarView, query_row

    state = AppState(survey="tiny", user="ana")
    view = SimilarView(data=data, state=state)
    assert view.query_mode == MODES[0] and view.n_results == 24
    assert view._download.disabled and view.refine_button.disabled
    assert view._gallery.items == [] and view._query_html.object == ""

    view.mode.value = MODES[1]  # the user picks the mode and types an id, key by key
    assert view.query_mode == MODES[1]
    view.object_id.value_input = "tiny-0007"
    assert view.query_id == "tiny-0007"
    view.n_results = 12  # set in code: the widget follows
    assert view.k.value == 12
    view.search()
    found = view.found
    assert len(found) == 12 and query_row(found) == 7 and state.picked == 7
    assert [item["index"] for item in view._gallery.items] == found["index"].tolist()
    assert "tiny-0007" in view._query_html.object and not view._download.disabled
    np.testing.assert_allclose(view.query_xy, [[data.x[7], data.y[7]]])

    first, second = found["index"].iat[0], found["index"].iat[1]
    view._gallery_action("pos", int(first))
    view._gallery_action("neg", int(second))
    assert view.marks == {first: "pos", second: "neg"} and not view.refine_button.disabled
    assert {i["index"]: i["mark"] for i in view._gallery.items}[first] == "pos"
    view.refine()  # marks are kept; the second result is pushed out
    assert view.marks == {first: "pos", second: "neg"}
    assert "1 example(s)" not in view._query_html.object  # the query and a + mark
    assert "2 example(s) and unlike 1" in view._query_html.object
    view._gallery_action("pos", int(first))  # a second click takes the mark off
    assert view.marks == {second: "neg"}

    view.fmt = "VOTable"
    assert view._download.filename.endswith(".vot") and view._fmt.value == "VOTable"

    view.query_id = "no-such-object"
    with pytest.raises(Exception, match="no-such-object"):
        view.search()
    assert view.found is None and view.marks == {} and view._gallery.items == []
    assert view._download.disabled and view._query_html.object == ""
    assert view.query_xy.shape == (0, 2)


def test_a_request_from_another_view_searches_from_that_object(data: object) -> None:
    from app.views.similar import MODES, SimilarView

    state = AppState(survey="tiny", user="ana")
    view = SimilarView(data=data, state=state)
    view.query_mode = MODES[2]
    state.ask_similar(42)
    assert view.query_mode == MODES[0] and view.mode.value == MODES[0]
    assert view.found is not None and view.found.attrs["query"]["index"] == 42
