"""The Explore map's full width (issue 13 follow-up): categorical colourings get a legend of
class names, swatches and counts under the map (at most LEGEND_MAX entries, then "+N more",
everything escaped) and no colour bar; numbers and density get a colour bar drawn under the
map (never over it); the toolbar folds no tool into an overflow menu. Pure builders, no browser."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # (the map's options need the bokeh backend)
import numpy as np
import pandas as pd
import pytest

from app import plots
from app.views.explore import LEGEND_MAX, legend_html


def test_the_class_legend_names_counts_escapes_and_stops_at_its_maximum() -> None:
    names = [f"class {k}" for k in range(LEGEND_MAX + 3)]
    names[0] = "<img src=x onerror=alert(1)>"
    names[-1] = "late <b>one</b>"
    key = {name: f"#{k:06x}" for k, name in enumerate(names)}
    key["nobody"] = "#ffffff"  # no object in this class: not listed, not counted
    counts = pd.Series({name: 1000 + k for k, name in enumerate(names)})
    text = legend_html(key, counts, "Predicted <class>")

    assert "<img" not in text and "<b>one" not in text and "<class>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt; <small>1,000</small>" in text
    assert "Predicted &lt;class&gt;" in text
    assert text.count("class='lsl-item'") == LEGEND_MAX
    assert f"class {LEGEND_MAX - 1} <small>{1000 + LEGEND_MAX - 1:,}</small>" in text
    assert f"class {LEGEND_MAX} <small>" not in text  # beyond the maximum: counted only
    assert "+3 more" in text and "late &lt;b&gt;one&lt;/b&gt;" in text  # names in its tooltip
    assert "nobody" not in text

    few = legend_html({"a": "#111111", "b": "#222222"}, pd.Series({"a": 2, "b": 3}))
    assert few.count("class='lsl-item'") == 2 and "more" not in few


def _plot(kind: str) -> tuple[object, hv.streams.Pipe]:
    """A map rendered as the page gets it: frames of ``kind`` pushed through one Pipe."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=500), rng.normal(size=500)
    values = {
        "cat": pd.Categorical(rng.choice(["a", "b"], 500)),
        "num": rng.random(500).astype(np.float32),
        "count": None,
    }
    key = {"a": "#ff0000", "b": "#00ff00"}

    def frame(kind: str, label: str) -> hv.Overlay:
        style = plots.MapStyle(kind, colour_key=key, clim=(0.0, 1.0), clabel=label)
        points = plots.map_points(x, y, values[kind])
        return plots.map_frame(plots.render_view(points, style, (-3, 3), (-3, 3), 80, 60), style)

    pipe = hv.streams.Pipe(data=(kind, "first"))
    dmap = hv.DynamicMap(lambda data: frame(*data), streams=[pipe])
    return hv.renderer("bokeh").get_plot(dmap), pipe


def _bars(figure: object) -> list[object]:
    """The colour bars under the map's drawing area; none may be drawn over it."""
    from bokeh.models import ColorBar

    assert not [r for r in figure.center if isinstance(r, ColorBar)], "a bar over the map"
    return [r for r in figure.below if isinstance(r, ColorBar)]


@pytest.mark.parametrize("first", ["cat", "num"])
def test_the_colour_bar_is_drawn_under_the_map_for_numbers_and_density_only(first: str) -> None:
    """The bar hid the objects at the map's top right corner: it lies under the drawing area,
    in room the figure has only while the bar shows (56 px of it were an empty strip above
    the legend of classes); the drawing area keeps its size whatever the colouring."""
    plot, pipe = _plot(first)
    figure = plot.state
    for kind, label in [("num", "score"), ("count", "objects per pixel"), ("num", "mag"),
                        ("cat", ""), ("num", "mag"), ("cat", "")]:  # fmt: skip
        pipe.send((kind, label))
        assert plot.state is figure
        assert figure.min_border_right != 100 and not figure.right  # no strip kept beside
        assert figure.height is None  # derived from the drawing area's, which stays
        assert figure.frame_height == plots.MAP_HEIGHT - plots.TOOLBAR_HEIGHT - plots.BAR_ROOM
        bars = _bars(figure)
        if kind == "cat":
            assert bars == [], "a colour bar over categories"
            # no room kept for a bar under classes: their legend follows the map closely
            assert figure.min_border_bottom == plots.NO_BAR_ROOM
            continue
        assert figure.min_border_bottom == plots.BAR_ROOM  # room under the map for the bar
        (bar,) = bars
        assert bar.title == label and bar.orientation == "horizontal"
        assert bar.color_mapper is not None and bar.ticker.ticks


def test_a_bar_shown_with_another_title_is_a_fresh_model_sharing_mapper_and_ticker() -> None:
    """BokehJS lays a colour bar out once, when it builds its view:
    a new title (or a bar shown after categories) must reach the page as another model."""
    plot, pipe = _plot("num")
    pipe.send(("num", "score"))
    (first,) = _bars(plot.state)
    pipe.send(("num", "score"))  # the same bar: its view stays
    assert _bars(plot.state) == [first]
    pipe.send(("count", "objects per pixel"))
    (second,) = _bars(plot.state)
    assert second is not first
    assert second.color_mapper is first.color_mapper and second.ticker is first.ticker
    pipe.send(("cat", ""))
    pipe.send(("count", "objects per pixel"))
    (third,) = _bars(plot.state)
    assert third is not second  # shown again after categories: a model the page lays out anew


def test_the_toolbar_has_room_for_every_tool_it_shows() -> None:
    """BokehJS sizes a toolbar above a figure at 30 px per tool (+25 for its logo) and folds
    what its buttons (30 px) and group dividers (1 px) exceed, less 15 px, into "⋮"."""
    plot, _ = _plot("cat")
    toolbar = plot.state.toolbar
    shown = [tool for tool in toolbar.tools if tool.visible]
    assert {"BoxSelectTool", "LassoSelectTool", "TapTool", "WheelZoomTool", "PanTool",
            "ResetTool"} <= {type(tool).__name__ for tool in shown}  # fmt: skip
    groups = len({type(tool).__name__ for tool in shown})  # at most one divider per kind
    width = 30 * len(toolbar.tools) + (25 if toolbar.logo is not None else 0) + 15
    content = 30 * len(shown) + (groups - 1) + (25 if toolbar.logo is not None else 0)
    assert content <= width - 15
