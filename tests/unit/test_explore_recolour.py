"""Explore recolours its map in place (issue 13): a change of colouring pushes a new image
through the map's Pipe and keeps the plot, so the browser does not build a new figure."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from app import plots
from app.colouring import LABELS
from app.data import SurveyData
from tests.unit.test_tiled_explore import explore, survey_data  # noqa: F401  (fixture)


def _linked_streams(plot: object) -> set[str]:
    """Names of the streams linked to a rendered plot's figure (Bokeh callbacks)."""
    found = {type(s).__name__ for cb in getattr(plot, "callbacks", []) for s in cb.streams}
    subplots = getattr(plot, "subplots", None)
    for sub in subplots.values() if isinstance(subplots, dict) else []:
        found |= _linked_streams(sub)
    return found


def _rgba(frame: hv.Overlay) -> np.ndarray:
    """The categories' picture of a map frame (its RGB layer)."""
    (element,) = [e for e in frame if isinstance(e, hv.RGB)]
    return np.dstack([element.dimension_values(d, flat=False) for d in element.vdims])


def test_a_class_colouring_change_keeps_the_plot_and_sends_the_new_image(
    survey_data: SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    view = explore(survey_data, monkeypatch)
    view.colour.value = "catalog:kind"
    plot, server, dmap = view._map.object, view._server_map, view._server_map.dmap
    kind_image = server.pipe.data
    legend = view._legend.object
    view.colour.value = LABELS.key  # nobody labelled: every object "unlabelled"
    assert view._map.object is plot, "the map's plot was replaced"
    assert view._server_map is server and server.dmap is dmap  # same streams, same Pipe
    labels_image = server.pipe.data
    assert labels_image is not kind_image
    before, after = _rgba(kind_image), _rgba(labels_image)
    assert before.shape == after.shape
    drawn = after[..., 3] > 0
    assert drawn.sum() > 100 and not np.array_equal(before, after)
    assert len({tuple(p) for p in after[drawn][:, :3]}) == 1  # one category: one colour
    assert view._legend.object != legend and "unlabelled" in view._legend.object
    view.colour.value = "catalog:kind"  # and back: the same picture as before
    assert view._map.object is plot
    np.testing.assert_array_equal(_rgba(server.pipe.data), before)


def test_a_number_colouring_change_updates_the_mapper_and_colour_bar_of_the_same_figure(
    survey_data: SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import holoviews.plotting.bokeh  # noqa: F401
    from bokeh.models import ColorBar

    view = explore(survey_data, monkeypatch)
    numbers = {s.column: s for s in view._specs.values() if s.kind == "num"}
    first, second = numbers["mag"], numbers["anomaly_score"]
    view.colour.value = first.key
    plot = hv.renderer("bokeh").get_plot(view._map.object)  # what the browser shows
    figure = plot.state
    (bar,) = figure.select(ColorBar)
    assert bar.title == first.label
    palette = list(bar.color_mapper.palette)
    view.colour.value = second.key
    assert plot.state is figure, "a new Bokeh figure was built"
    (bar,) = figure.select(ColorBar)
    _, _, clim = view._colour_values(second)
    assert bar.title == second.label
    assert (bar.color_mapper.low, bar.color_mapper.high) == pytest.approx(clim)
    assert list(bar.color_mapper.palette) != palette  # viridis -> plasma


def _shown_bar(figure: object) -> object | None:
    """The colour bar drawn under the map's drawing area, None when there is none."""
    from bokeh.models import ColorBar

    assert not [r for r in figure.center if isinstance(r, ColorBar)], "a bar over the map"
    bars = [r for r in figure.below if isinstance(r, ColorBar)]
    assert len(bars) <= 1 and not figure.right, (bars, figure.right)  # no strip beside it
    # room under the drawing area for the bar only while it shows; the drawing area keeps its
    # height (the figure's is derived from it)
    room = plots.BAR_ROOM if bars else plots.NO_BAR_ROOM
    assert figure.min_border_bottom == room and figure.height is None
    assert figure.frame_height == plots.MAP_HEIGHT - plots.TOOLBAR_HEIGHT - plots.BAR_ROOM
    return bars[0] if bars else None


def test_a_change_between_kinds_of_colouring_keeps_the_figure_bar_and_glyphs(
    survey_data: SurveyData,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Classes -> a number -> density -> a number -> classes: one Bokeh figure all along; its
    colour bar, under the drawing area, shows for the number (titled, linear mapper on the
    number's range, round ticks) and density (titled, the same linear mapper over a picture
    equalised on the server, ticked with object counts), and is gone for classes, whose
    picture is back as it was. The bars keep one ticker object (BokehJS reads a colour bar's
    ticker only once); a bar shown with another title is a fresh model (BokehJS lays a
    bar out once, when it builds its view)."""
    import holoviews.plotting.bokeh  # noqa: F401
    from bokeh.models import ColorBar, FixedTicker, LinearColorMapper
    from bokeh.models import Image as ImageGlyph

    view = explore(survey_data, monkeypatch)
    view.colour.value = "catalog:kind"
    classes = _rgba(view._server_map.pipe.data)
    plot = hv.renderer("bokeh").get_plot(view._map.object)
    figure, pane = plot.state, view._map.object
    wanted = {"Tap", "PointerXY", "BoundsXY", "Lasso", "RangeXY", "PlotSize"}
    assert wanted <= _linked_streams(plot), "the map's tools reach no stream"
    layer = next(p for p in plot.subplots.values() if isinstance(p.handles["glyph"], ImageGlyph))
    glyph, source = layer.handles["glyph"], layer.handles["source"]
    assert _shown_bar(figure) is None and figure.min_border_right != 100  # no room kept
    # the page keeps no more room for the map than its figure takes under classes
    assert view._map.min_height == figure.frame_height + plots.TOOLBAR_HEIGHT + plots.NO_BAR_ROOM
    number = next(s for s in view._specs.values() if s.kind == "num" and s.column == "mag")
    view.colour.value = number.key
    assert view._map.object is pane and plot.state is figure, "a new figure for a number"
    bar = _shown_bar(figure)
    assert isinstance(bar, ColorBar) and bar.title == number.label
    assert bar.orientation == "horizontal"
    assert isinstance(glyph.color_mapper, LinearColorMapper)
    assert bar.color_mapper is glyph.color_mapper
    _, _, clim = view._colour_values(number)
    assert (glyph.color_mapper.low, glyph.color_mapper.high) == pytest.approx(clim)
    drawn = np.isfinite(source.data["image"][0]).sum()
    assert drawn > 100
    ticker, mapper = bar.ticker, glyph.color_mapper
    assert isinstance(ticker, FixedTicker) and ticker.ticks and not bar.major_label_overrides
    assert clim[0] <= min(ticker.ticks) and max(ticker.ticks) <= clim[1]
    view.colour.value = "density"
    assert view._map.object is pane and plot.state is figure, "a new figure for density"
    number_bar, bar = bar, _shown_bar(figure)
    assert bar is not number_bar and bar.title == "objects per pixel"
    assert glyph.color_mapper is mapper and bar.color_mapper is mapper  # no mapper swapped
    assert bar.ticker is ticker  # the same ticker, new ticks
    equalised = source.data["image"][0]
    shown = np.isfinite(equalised)
    assert shown.sum() > 100 and equalised[shown].max() == 1
    assert mapper.low < equalised[shown].min() and mapper.high == 1  # lowest count not bottom
    labels = [bar.major_label_overrides[t] for t in ticker.ticks]
    assert labels[0] == "1" and all(label.replace(",", "").isdigit() for label in labels)
    view.colour.value = number.key
    bar = _shown_bar(figure)
    assert bar.title == number.label
    assert bar.ticker is ticker and not bar.major_label_overrides
    assert (mapper.low, mapper.high) == pytest.approx(clim)
    view.colour.value = "catalog:kind"
    assert view._map.object is pane and plot.state is figure, "a new figure for classes"
    assert _shown_bar(figure) is None
    assert not np.isfinite(source.data["image"][0]).any()  # number layer empty
    np.testing.assert_array_equal(_rgba(view._server_map.pipe.data), classes)


def test_the_map_kernels_are_compiled_once_per_process_and_dtypes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """warm_up renders a tiny density and number view (datashader compiles its kernels then,
    not in the user's first change of colouring), once per dtypes of the positions."""
    from app import plots

    calls: list[str] = []

    def render(points: hv.Points, style: object, *view: object) -> None:
        if points.data["x"].dtype == np.float16:  # not another view's warm-up thread
            calls.append(style.kind)

    monkeypatch.setattr(plots, "render_view", render)
    monkeypatch.setattr(plots, "_warmed", set())
    x16 = np.arange(5, dtype=np.float16)
    plots.warm_up(x16, x16)
    plots.warm_up(x16 + 1, x16)  # same dtypes: nothing more to compile
    assert calls == ["count", "num"]
    plots.warm_up(x16, x16.astype(np.int16))
    assert calls == ["count", "num", "count", "num"]
    plots.warm_up_later(x16, x16)  # done already: no thread
    assert calls == ["count", "num", "count", "num"]


def test_density_is_equalised_as_datashader_shades_it_with_count_ticks() -> None:
    """Each drawn pixel's count becomes datashader's eq_hist level (the fraction of drawn
    pixels with at most that count), mapped linearly over a span whose lower end
    rescale_discrete_levels lowered: the colours are datashader's own ``shade(how="eq_hist",
    rescale_discrete_levels=True)``, one-object pixels not at the palette's bottom; the bar's
    ticks are counts at their levels."""
    import datashader.transfer_functions as tf
    import xarray as xr

    from app.plots import equalise_counts

    counts = np.array([[np.nan, 1, 1, 1], [1, 2, 2, 5], [0, 5, 10, 40]])
    values, span, ticks = equalise_counts(counts)
    assert np.isnan(values[0, 0]) and np.isnan(values[2, 0])  # nothing drawn there
    assert values[0, 1] == pytest.approx(4 / 10) and values[1, 1] == pytest.approx(6 / 10)
    assert values[2, 3] == 1 and values.dtype == np.float32
    assert span[1] == 1 and span[0] < 4 / 10  # 6 levels: the lower end pulled down
    assert ticks[0] == (pytest.approx(0.4), "1")
    assert [label for _, label in ticks] == ["1", "2", "5", "10"]  # 20: at 10's place
    palette = ["#000000", "#ffffff"]
    agg = xr.DataArray(np.nan_to_num(counts).astype(np.uint32), dims=["y", "x"])
    theirs = tf.shade(agg, cmap=palette, how="eq_hist", rescale_discrete_levels=True)
    grey = np.asarray(theirs.data).view(np.uint8).reshape(*counts.shape, 4)[..., 0]
    ours = np.interp(values, span, [0, 255])
    drawn = np.isfinite(values)
    np.testing.assert_allclose(ours[drawn], grey[drawn], atol=1)
    assert grey[0, 1] > 0 and ours[0, 1] > 1  # one object: above the bottom colour
    big = np.arange(1, 2001, dtype=float).reshape(40, 50)
    _, wide, big_ticks = equalise_counts(big)
    assert wide == (pytest.approx(1 / 2000), 1.0)  # many levels: no rescaling
    assert big_ticks[-1][1] == "2,000"
    assert equalise_counts(np.full((2, 2), np.nan))[2] == ()


def test_number_ticks_are_round_and_inside_the_range() -> None:
    from app.plots import nice_ticks

    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(17.3, 24.9) == [18.0, 20.0, 22.0, 24.0]
    assert nice_ticks(-0.013, 0.021) == [-0.01, 0.0, 0.01, 0.02]
    assert nice_ticks(3.0, 3.0) == [3.0]
