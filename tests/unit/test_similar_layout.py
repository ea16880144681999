"""The Similar tab as a user sees it (UI polish of issue 13's workbench): a search's markers
reach the map in one update sent before the gallery's results (they came ~3 s after the
thumbnails under load), the query's caption spans the page above the results (it wrapped in a
narrow column between the controls and the map), result tiles keep an id whole on its own
lines with rank, similarity and class under it. In-process on the tiny survey with a fake
encoder's products."""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import pytest

from app.state import AppState
from tests.unit.test_view_params_explore_similar import data  # noqa: F401  (fixture)


def _view(data: object) -> object:  # noqa: F811
    from app.views.similar import MODES, SimilarView

    view = SimilarView(data=data, state=AppState(survey="tiny", user="ana"))
    view.query_mode = MODES[1]
    return view


def test_a_search_sends_its_markers_in_one_update_before_the_gallery(data: object) -> None:  # noqa: F811
    view = _view(data)
    order: list[str] = []
    view._marks_pipe.add_subscriber(lambda **_: order.append("map"))
    view._gallery.param.watch(lambda _: order.append("gallery"), "items")
    view._query_html.param.watch(lambda _: order.append("caption"), "object")
    view.state.param.watch(lambda _: order.append("pick"), "picked")
    view.query_id = "tiny-0007"
    view.search()
    # one map update, first; the other views (Explore's marker, the details) follow last
    assert order[0] == "map" and order.count("map") == 1 and order[-1] == "pick", order
    assert {"gallery", "caption"} <= set(order)
    results, query = view._marks_pipe.data
    found = view.found["index"].to_numpy()
    np.testing.assert_allclose(results, np.column_stack([data.x[found], data.y[found]]))
    np.testing.assert_allclose(query, [[data.x[7], data.y[7]]])

    order.clear()
    view.query_id = "no-such-object"
    with pytest.raises(Exception, match="no-such-object"):
        view.search()
    assert order[0] == "map"  # a failed search takes its markers off the map too
    results, query = view._marks_pipe.data
    assert results.shape == (0, 2) and query.shape == (0, 2)


def test_the_markers_are_one_layer_of_dots_and_a_star() -> None:
    from app.views.similar import search_marks

    marks = search_marks((np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[0.5, 0.5]])))
    results, query = marks.values()
    assert len(results) == 2 and len(query) == 1
    empty = search_marks((np.zeros((0, 2)), np.zeros((0, 2))))
    assert [len(e) for e in empty.values()] == [0, 0]


def test_the_query_caption_spans_the_page_above_the_results(data: object) -> None:  # noqa: F811
    view = _view(data)
    page = view.__panel__()
    children = list(page.objects)
    assert children.index(view._query_html) == children.index(view._gallery) - 1
    top = next(c for c in children if isinstance(c, pn.Row))
    assert view._query_html not in top.objects  # not squeezed between controls and map
    (right,) = [c for c in top.objects if view._map in getattr(c, "objects", [])]
    assert right.sizing_mode == "stretch_width"  # the map takes the rest of the row
    view.query_id = "tiny-0007"
    view.search()
    assert "<b>Query</b>: " in view._query_html.object  # one line: "Query: 24 objects most…"


def test_result_tiles_show_the_id_then_rank_similarity_and_class() -> None:
    from app.views.similar import result_items

    found = pd.DataFrame({
        "index": [3, 9], "object_id": ["587722982271615079", "587722982271615080"],
        "rank": [1, 2], "similarity": [0.98765, 0.5],
    })  # fmt: skip
    classes = pd.Series(["a"] * 10)
    items = result_items(found, {9: "neg"}, classes, lambda i, size: f"/t/{i}")
    assert items[0]["caption"] == "587722982271615079"  # whole, nothing before it to wrap
    assert items[0]["sub"] == "#1 · sim 0.988\na" and items[1]["mark"] == "neg"
    assert result_items(found, {}, None, lambda i, size: "")[1]["sub"] == "#2 · sim 0.500"
