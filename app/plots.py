"""Plot builders (pure functions): the datashaded latent map, overlays and model diagnostics.

The map is aggregated on the server (datashader) for every viewport; the browser only gets an
image of the current view, whatever the number of objects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import datashader as ds
import holoviews as hv
import holoviews.operation.datashader as hd
import numpy as np
import pandas as pd

from app.shading import categorical_rgba

MAP_BG = "#0f1420"
MAP_HEIGHT = 560
MAP_TOOLS = ["box_select", "lasso_select", "tap", "wheel_zoom", "pan", "reset"]
ACCENT = "#f59e0b"


def visible_cmap(name: str, drop: float = 0.15) -> list[str]:
    """Colour map ``name`` without its darkest end, which would vanish on the dark map."""
    from holoviews.plotting.util import process_cmap

    colours = process_cmap(name, 256)
    return colours[int(drop * len(colours)) :]


def map_points(x: np.ndarray, y: np.ndarray, values: Any | None = None) -> hv.Points:
    """hv.Points of the whole map, with an optional value column ``v`` to colour by."""
    data = {"x": x, "y": y}
    vdims = []
    if values is not None:
        data["v"] = values
        vdims = ["v"]
    return hv.Points(pd.DataFrame(data, copy=False), kdims=["x", "y"], vdims=vdims)


def aggregator(kind: str) -> ds.reductions.Reduction:
    """Datashader reduction for a colour kind: count, count per category, or mean value."""
    if kind == "cat":
        return ds.count_cat("v")
    if kind == "num":
        return ds.mean("v")
    return ds.count()


@dataclass(frozen=True)
class MapStyle:
    """How the map is coloured: "count" (density), "cat" (categories) or "num" (mean value)."""

    kind: str
    colour_key: dict[str, str] | None = None
    cmap: str = "viridis"
    clim: tuple[float, float] | None = None
    title: str = ""
    height: int = MAP_HEIGHT
    colorbar: bool = True
    clabel: str = ""  # the colour bar's title: the colouring's name as the user chose it


SPREAD = {"threshold": 0.8, "max_px": 4}  # dynspread: isolated objects stay visible
MIN_ALPHA = 170  # categorical shading: faint pixels would vanish on the dark map


def render_view(
    points: hv.Points,
    style: MapStyle,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int,
    height: int,
) -> hv.Element:
    """The map aggregated for one viewport (datashader) and spread: what one pan or zoom costs.

    Categories are counted and shaded to RGB by :mod:`app.shading` with ``colour_key`` (the
    caller draws the legend); counts and means are datashader aggregates that stay numbers, so
    Bokeh colour-maps them and draws a colour bar.
    """
    view = {"dynamic": False, "x_range": tuple(x_range), "y_range": tuple(y_range),
            "width": int(width), "height": int(height)}  # fmt: skip
    if style.kind == "cat":
        data = points.data
        rgba = categorical_rgba(
            data["x"].to_numpy(), data["y"].to_numpy(), data["v"], style.colour_key or {},
            view["x_range"], view["y_range"], view["width"], view["height"], MIN_ALPHA,
        )  # fmt: skip
        (x0, x1), (y0, y1) = view["x_range"], view["y_range"]
        image = hv.RGB(rgba, bounds=(x0, y0, x1, y1), vdims=["R", "G", "B", "A"])
    else:
        image = hd.rasterize(points, aggregator=aggregator(style.kind), **view)
    return hd.dynspread(image, dynamic=False, **SPREAD).opts(**map_opts(style))


_warmed: set[tuple[str, ...]] = set()
_warm_lock = threading.Lock()


def _dtypes(x: np.ndarray, y: np.ndarray) -> tuple[str, str]:
    return str(np.asarray(x).dtype), str(np.asarray(y).dtype)


def warm_up(x: np.ndarray, y: np.ndarray) -> None:
    """Compile datashader's kernels for the density and number colourings of a map whose
    positions have the dtypes of ``x``, ``y`` (a tiny view, once per process and dtypes):
    the first of each otherwise costs seconds of numba compilation in the user's first
    change of colouring."""
    with _warm_lock:
        if _dtypes(x, y) in _warmed:
            return
        _warmed.add(_dtypes(x, y))
        xs, ys = np.asarray(x)[:2], np.asarray(y)[:2]
        values = np.zeros(len(xs), dtype=np.float32)  # numbers are coloured as float32
        for kind, v in (("count", None), ("num", values)):
            render_view(map_points(xs, ys, v), MapStyle(kind), (-1.0, 1.0), (-1.0, 1.0), 8, 8)


def warm_up_later(x: np.ndarray, y: np.ndarray) -> None:
    """:func:`warm_up` on a daemon thread of its own (not the server's pool, and not blocking
    a notebook), unless done already."""
    if _dtypes(x, y) in _warmed:
        return

    def run() -> None:
        try:
            warm_up(x, y)
        except Exception:  # only a speed-up: the first change of colouring compiles instead
            logging.getLogger(__name__).exception("map kernels not compiled ahead")

    threading.Thread(target=run, name="latentsky-map-warm-up", daemon=True).start()


def map_opts(style: MapStyle) -> dict[str, Any]:
    """Bokeh options of the map image."""
    opts: dict[str, Any] = {
        "responsive": True, "height": style.height, "bgcolor": MAP_BG, "tools": MAP_TOOLS,
        "active_tools": ["pan", "wheel_zoom"], "xaxis": None, "yaxis": None,
        "title": style.title, "toolbar": "above", "default_tools": [],
    }  # fmt: skip
    if style.kind == "cat":
        return {**opts, "show_legend": False}  # the page draws the legend, with counts
    opts.update(cmap=visible_cmap(style.cmap), colorbar=style.colorbar, hooks=[title_colour_bar])
    if style.clabel:
        opts["clabel"] = style.clabel
    if style.kind == "count":
        opts["cnorm"] = "eq_hist"
    elif style.clim:
        opts["clim"] = style.clim
    return opts


def title_colour_bar(plot: Any, element: hv.Element) -> None:
    """Bokeh hook: the colour bar's title follows ``clabel`` on every frame (HoloViews titles
    it once, when the plot is built; a map recoloured in place keeps its plot)."""
    bar = plot.handles.get("colorbar")
    if bar is not None and plot.clabel and bar.title != plot.clabel:
        bar.title = plot.clabel


def map_frame(element: hv.Element, style: MapStyle) -> hv.Overlay:
    """One frame of the map, the same two layers whatever the colouring: an RGB picture
    (categories, shaded on the server) under a colour-mapped image (numbers, or counts for
    density); the layer a colouring does not use is empty. Every colouring thus updates the
    same Bokeh figure, glyphs and colour bar (:class:`ColourBarHook` shows the bar and picks
    the mapper), so changing the colouring, even between kinds, sends only new data."""
    x0, y0, x1, y1 = element.bounds.lbrt()
    base = map_opts(replace(style, kind="cat"))  # the figure's options, no colour mapping
    if style.kind == "cat":
        rgb = element
        empty = hv.Dimension("v", range=(0.0, 1.0))
        image = hv.Image(np.full((1, 1), np.nan), bounds=(x0, y0, x1, y1), vdims=[empty])
    else:
        rgb = hv.RGB(np.zeros((1, 1, 4), np.uint8), bounds=(x0, y0, x1, y1), vdims=list("RGBA"))
        image = _float32(element)
    clim, ticks = _clim(style), ()
    if style.kind == "count":
        image, clim, ticks = equalised(image)
    image_opts = {**base, "cmap": visible_cmap(style.cmap), "colorbar": style.colorbar,
                  "clabel": style.clabel or " ", "cnorm": "linear", "clim": clim,
                  "colorbar_position": "bottom", "colorbar_opts": COLOUR_BAR_OPTS,
                  "hooks": [ColourBarHook(style.kind, ticks)]}  # fmt: skip
    return hv.Overlay([rgb.opts(**base), image.opts(**image_opts)]).opts(hooks=[bar_room])


Ticks = tuple[tuple[float, str], ...]  # (place on the colour bar, its label)


def equalise_counts(counts: np.ndarray) -> tuple[np.ndarray, tuple[float, float], Ticks]:
    """A density picture equalised as datashader's ``shade(how="eq_hist",
    rescale_discrete_levels=True)`` does it: each drawn pixel's count (finite, > 0) becomes the
    fraction of drawn pixels with at most that count (``datashader.transfer_functions.eq_hist``),
    float32, NaN where nothing is drawn; with the colour range to map it linearly over (the
    span, its lower end lowered when there are few distinct counts, so that the smallest count
    keeps a colour above the palette's bottom) and the bar's ticks: counts 1, 2, 5, 10, ... at
    their equalised places, none closer than 6% of the bar."""
    import datashader.transfer_functions as tf

    c = np.asarray(counts, dtype=np.float64)
    drawn = np.isfinite(c) & (c > 0)
    out = np.full(c.shape, np.nan, dtype=np.float32)
    if not drawn.any():
        return out, (0.0, 1.0), ()
    whole = np.where(drawn, np.rint(c), 0).astype(np.int64)
    offset = int(whole[drawn].min())
    levels, n_levels = tf.eq_hist(whole - offset, mask=~drawn)
    out[drawn] = levels[drawn]
    span = _rescaled_span(n_levels, (float(levels[drawn].min()), float(levels[drawn].max())))
    values = np.sort(whole[drawn])
    top = int(values[-1])
    nice = [
        m * 10**e for e in range(len(str(top))) for m in (1, 2, 5) if offset <= m * 10**e <= top
    ]
    places = np.searchsorted(values, nice, side="right") / values.size  # eq_hist's cdf at each
    ticks: list[tuple[float, str]] = []
    for place, count in zip(places.tolist(), nice, strict=True):
        if not ticks or place - ticks[-1][0] >= 0.06 * (span[1] - span[0]):
            ticks.append((place, f"{count:,}"))
    return out, span, tuple(ticks)


def _rescaled_span(n_levels: int, span: tuple[float, float]) -> tuple[float, float]:
    """Datashader's ``rescale_discrete_levels`` (``transfer_functions._rescale_discrete_levels``,
    private there): with few distinct counts the span's lower end goes down, linearly from 1.5
    spans at 2 levels to 1 span at 100, so that the lowest count is not the palette's bottom."""
    multiple = -0.5 / 98.0 * n_levels + 1.5 + 1.0 / 98.0
    if multiple <= 1:
        return span
    return (max(span[1] - multiple * (span[1] - span[0]), 0.0), 1.0)


def equalised(image: hv.Image) -> tuple[hv.Image, tuple[float, float], Ticks]:
    """A density picture equalised on the server (:func:`equalise_counts`), with its colour
    range and bar ticks, so the browser maps it linearly: Bokeh's own EqHistColorMapper scans
    every picture it maps, the first of the next colouring too, which held the page's main
    thread 0.2-1.5 s per change of colouring into or out of density."""
    data, name = image.data, image.vdims[0].name
    if hasattr(data, "data_vars"):  # xarray, as datashader aggregates
        values, span, ticks = equalise_counts(data[name].values)
        return image.clone(data.assign({name: (data[name].dims, values)})), span, ticks
    if isinstance(data, dict) and name in data:
        values, span, ticks = equalise_counts(np.asarray(data[name]))
        return image.clone({**data, name: values}), span, ticks
    return image, (np.nan, np.nan), ()


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """About ``target`` round numbers (steps of 1, 2 or 5 × 10^k) between ``low`` and ``high``."""
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        return [float(low)] if np.isfinite(low) else []
    raw = (high - low) / target
    base = 10.0 ** np.floor(np.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    digits = max(0, int(-np.floor(np.log10(step))) + 1)
    first = np.ceil(low / step - 1e-9) * step
    return [round(float(t), digits) for t in np.arange(first, high + step * 1e-9, step)]


def _float32(image: hv.Image) -> hv.Image:
    """``image`` with float32 values (half of float64's bytes sent to the browser for every
    frame; counts with ``nodata`` become float64 in HoloViews otherwise)."""
    data, name = image.data, image.vdims[0].name
    if hasattr(data, "data_vars"):  # xarray, as datashader aggregates
        return image.clone(data.astype(np.float32))
    if isinstance(data, dict) and name in data:
        return image.clone({**data, name: np.asarray(data[name], dtype=np.float32)})
    return image


def _clim(style: MapStyle) -> tuple[float, float]:
    """The colour range option of a frame: numbers' robust range, density's from the data
    (NaN: HoloViews takes the image's range), any finite range for the empty layer."""
    if style.kind == "num" and style.clim:
        return style.clim
    return (np.nan, np.nan) if style.kind != "cat" else (0.0, 1.0)


# the colour bar is drawn under the map's drawing area, never over it (a bar inside the map hid
# ~220x65 px of objects at its top right corner); the figure keeps room for it under the
# drawing area only while it shows (categories have none: the page draws their legend right
# under the map) and is that much shorter otherwise, so showing, hiding or relabelling it never
# resizes the drawing area (a new size would make the server draw the map a second time after
# each change of colouring, and the map jump)
COLOUR_BAR_OPTS: dict[str, Any] = {
    "orientation": "horizontal", "location": (0, 0), "width": 260, "height": 10,
    "padding": 4, "margin": 0, "background_fill_alpha": 0.0, "title_standoff": 3,
    "title_text_color": "#334155", "title_text_font_size": "12px",
    "title_text_font_style": "normal", "major_label_text_color": "#334155",
    "major_label_text_font_size": "11px", "major_tick_line_color": "#334155",
    "bar_line_color": None, "border_line_color": None,
}  # fmt: skip
BAR_ROOM = 56  # px under the drawing area: the bar with its title and tick labels
NO_BAR_ROOM = 6  # px under the drawing area of a map without a bar
TOOLBAR_HEIGHT = 30  # px above the drawing area: BokehJS's toolbar, the top border within it
TOOLBAR_ROOM_TAG = "latentsky-toolbar-room"


@dataclass(frozen=True)
class ColourBarHook:
    """Bokeh hook of the map's colour-mapped layer: the colour bar shows for numbers and
    density only, titled by ``clabel``; categories have none (the page draws their legend).

    Both map linearly (density comes equalised, see :func:`equalised`), so the glyph and the
    bar keep HoloViews' one mapper. The bars keep one ``FixedTicker`` for their life, set on
    the first frame: BokehJS's colour bar reads its ticker once, when its view is built, so a
    ticker swapped later never reaches the page, while a change to that ticker's ``ticks`` and
    the bar's ``major_label_overrides`` does. Density's ticks are ``ticks`` (counts at their
    equalised places), numbers' :func:`nice_ticks` over the mapper's range.

    The bar lies under the drawing area, in the room the figure keeps there for it
    (:data:`BAR_ROOM`, whatever the colouring). BokehJS lays a colour bar out once, when its
    view is built (a bar shown after being hidden is drawn at the canvas's corner, a new title
    is not fitted), so the bar is taken out of the figure for categories and, when it shows
    with another title, the other of two bars (HoloViews' and a copy sharing its mapper and
    ticker) takes its place: the page builds a fresh view, laid out for what it shows. The
    figure's toolbar loses the logo and gains an invisible tool (:func:`toolbar_room`), so
    that no tool is folded into its overflow menu."""

    kind: str
    ticks: Ticks = ()

    def __call__(self, plot: Any, element: hv.Element) -> None:
        from bokeh.models import ColorBar, FixedTicker

        figure = plot.state
        toolbar_room(figure)
        bar = plot.handles.get("colorbar")
        mapper = plot.handles.get("color_mapper")
        if bar is None or mapper is None:
            return
        if not isinstance(bar.ticker, FixedTicker):
            bar.ticker = FixedTicker(ticks=[])
        places: list[float] = []
        labels: dict[float, str] = {}
        if self.kind == "count":
            places = [place for place, _ in self.ticks]
            labels = dict(self.ticks)
        elif self.kind == "num" and mapper.low is not None and mapper.high is not None:
            places = nice_ticks(float(mapper.low), float(mapper.high))
        shown = self.kind != "cat"
        title = plot.clabel if shown and plot.clabel else ""
        bars = [r for r in figure.below if isinstance(r, ColorBar)]
        current = bars[0] if bars else None
        drawn = plot.handles.get("colorbar_drawn")  # (shown, title) of the bar in the figure
        target = current
        if drawn != (shown, title):
            if drawn is not None and shown:  # the page has a view of the current bar
                spare = plot.handles.get("colorbar_spare")
                if spare is None:
                    spare = ColorBar(**bar.properties_with_values(include_defaults=False))
                    plot.handles["colorbar_spare"] = spare
                target = spare if current is not spare else bar
            else:
                target = current or bar
            plot.handles["colorbar_drawn"] = (shown, title)
        if target is None:
            return
        if target.title != title:
            target.title = title
        if list(bar.ticker.ticks) != places:
            bar.ticker.ticks = places
        if dict(target.major_label_overrides) != labels:
            target.major_label_overrides = labels
        others = [r for r in figure.below if not isinstance(r, ColorBar)]
        wanted = [*others, target] if shown else others
        if list(figure.below) != wanted:
            # the room first: BokehJS lays the figure out again at once for a new border,
            # while it builds the view of a bar put below later ("cannot find a view for
            # ColorBar" when the room came after the bar)
            figure.min_border_bottom = BAR_ROOM if shown else NO_BAR_ROOM
            figure.below = wanted


def bar_room(plot: Any, element: hv.Element) -> None:
    """Bokeh hook of the map's overlay (it runs after the overlay sets the figure's borders and
    its layers' hooks placed or removed the colour bar): the drawing area keeps the height it
    has with a bar (``frame_height``: the figure's height less the toolbar and
    :data:`BAR_ROOM`), and the figure is only as tall as what it shows under it: the bar's
    room while a colour bar shows there, :data:`NO_BAR_ROOM` otherwise. A map coloured by
    classes thus has no empty strip between it and its legend (56 px were kept under every
    colouring), and a change of colouring never resizes the drawing area. (BokehJS ignores a
    new ``height`` of a figure it has laid out; with ``frame_height`` it sizes the figure from
    the drawing area and borders on every change.)"""
    from bokeh.models import ColorBar

    figure = plot.state
    frame = int(plot.height) - TOOLBAR_HEIGHT - BAR_ROOM
    if figure.frame_height != frame or figure.height is not None:
        figure.update(frame_height=frame, height=None)
    shown = any(isinstance(r, ColorBar) for r in figure.below)
    room = BAR_ROOM if shown else NO_BAR_ROOM
    if figure.min_border_bottom != room:
        figure.min_border_bottom = room


def toolbar_room(figure: Any) -> None:
    """No Bokeh logo on ``figure``'s toolbar, and one invisible tool more: BokehJS sizes a
    toolbar above a figure at 30 px per tool (its logo 25 more) and folds into an overflow
    menu ("⋮") whatever its buttons and group dividers exceed, so with dividers its last tool
    was always folded."""
    from bokeh.models import ResetTool

    toolbar = getattr(figure, "toolbar", None)
    if toolbar is None:
        return
    if toolbar.logo is not None:
        toolbar.logo = None
    if not any(TOOLBAR_ROOM_TAG in tool.tags for tool in toolbar.tools):
        toolbar.tools = [*toolbar.tools, ResetTool(visible=False, tags=[TOOLBAR_ROOM_TAG])]


def marker_overlay(
    x: Sequence[float], y: Sequence[float], *, colour: str = ACCENT, size: int = 9,
    marker: str = "circle", label: str = "",
) -> hv.Points:  # fmt: skip
    """A handful of highlighted objects on top of the map (query, results, current object)."""
    pts = hv.Points((np.asarray(x, float), np.asarray(y, float)), label=label)
    return pts.opts(
        color=colour, size=size, marker=marker, line_color="white", line_width=1.2,
        fill_alpha=0.9, tools=[],
    )  # fmt: skip


MAX_SHARED = 20_000  # objects of a shared selection drawn one by one; beyond, an even sample


def shared_selection(x: np.ndarray, y: np.ndarray) -> hv.Points:
    """Objects selected on another map (the sky), drawn on top of the latent map: small
    orange dots, an even sample beyond ``MAX_SHARED``."""
    step = max(1, -(-len(x) // MAX_SHARED))
    pts = hv.Points((np.asarray(x[::step], float), np.asarray(y[::step], float)), ["x", "y"])
    return pts.opts(color=ACCENT, size=4, line_color=None, alpha=0.9, tools=[])


def reliability_diagram(rel: dict[str, list[float]]) -> hv.Overlay:
    """Confidence vs accuracy per bin (from a classifier's ``metrics["reliability"]``)."""
    conf = np.asarray(rel.get("confidence", []), dtype=float)
    acc = np.asarray(rel.get("accuracy", []), dtype=float)
    count = np.asarray(rel.get("count", [1] * len(conf)), dtype=float)
    ok = (conf >= 0) & (acc >= 0) & (count > 0)
    lower = np.asarray(rel.get("bin_lower", np.linspace(0, 1, len(conf) + 1)[:-1]), dtype=float)
    upper = np.asarray(rel.get("bin_upper", np.linspace(0, 1, len(conf) + 1)[1:]), dtype=float)
    bins = hv.Rectangles((lower[ok], np.zeros(ok.sum()), upper[ok], acc[ok]), vdims=[]).opts(
        color="#4c78a8", alpha=0.55, line_color="white"
    )
    diag = hv.Curve(([0, 1], [0, 1])).opts(color="grey", line_dash="dashed")
    pts = hv.Scatter((conf[ok], acc[ok]), "confidence", "accuracy").opts(
        color=ACCENT, size=7, tools=["hover"]
    )
    return (bins * diag * pts).opts(
        title="Reliability (held-out)", xlim=(0, 1), ylim=(0, 1), height=280, width=320, toolbar=None,
        xlabel="predicted confidence", ylabel="observed accuracy",
    )  # fmt: skip


def pit_histogram(name: str, density: Sequence[float]) -> hv.Overlay:
    """PIT histogram of one emulated property (flat = calibrated)."""
    d = np.asarray(density, dtype=float)
    edges = np.linspace(0, 1, len(d) + 1)
    hist = hv.Histogram((edges, d), kdims=["PIT"], vdims=["density"])
    flat = hv.HLine(1.0).opts(color="grey", line_dash="dashed")
    return (hist.opts(color="#72b7b2", line_color="white") * flat).opts(
        title=f"PIT: {name}",
        height=240,
        width=320,
        toolbar=None,
        ylim=(0, max(2.0, float(d.max(initial=0)) * 1.1)),
    )


def training_curve(history: Sequence[dict[str, Any]], title: str) -> hv.Overlay | None:
    """Train / validation loss per epoch from a version's training history."""
    rows = [h for h in history if "epoch" in h]
    if not rows:
        return None
    df = pd.DataFrame(rows)
    curves = []
    for col, colour in (("train_loss", "#4c78a8"), ("val_loss", ACCENT)):
        if col in df and df[col].notna().any():
            curves.append(
                hv.Curve(df, "epoch", col, label=col.replace("_", " ")).opts(color=colour)
                * hv.Scatter(df, "epoch", col).opts(color=colour, size=5)
            )
    if not curves:
        return None
    return hv.Overlay(curves).opts(
        title=title,
        height=280,
        width=320,
        toolbar=None,
        ylabel="loss",
        legend_position="top_right",
    )


MIN_SCORE_SPAN = 0.1  # of a score in [0, 1]: smaller changes are not drawn as cliffs


def score_range(values: pd.Series) -> tuple[float, float] | None:
    """A y range at least :data:`MIN_SCORE_SPAN` wide around scores in [0, 1] that vary less
    than that (None: leave the range to Bokeh)."""
    lo, hi = float(values.min()), float(values.max())
    if not (0.0 <= lo <= hi <= 1.0) or hi - lo >= MIN_SCORE_SPAN:
        return None
    start = min(max(0.0, (lo + hi - MIN_SCORE_SPAN) / 2), 1.0 - MIN_SCORE_SPAN)
    return start, start + MIN_SCORE_SPAN


def learning_curve(df: pd.DataFrame, metric: str) -> hv.Overlay:
    """A metric per retraining round (x: labels used, else round number)."""
    x = "labels" if "labels" in df and df["labels"].notna().all() else "round"
    curve = hv.Curve(df, x, metric).opts(color="#4c78a8")
    pts = hv.Scatter(df, x, [metric, "version"]).opts(color=ACCENT, size=8, tools=["hover"])
    opts: dict[str, Any] = {}
    if x == "round":  # whole rounds only (Bokeh ticked 0.2, 0.4, ... between two rounds)
        rounds = sorted({int(r) for r in df[x]})
        opts["xticks"] = rounds[:: -(-len(rounds) // 10)]  # at most 10
    ylim = score_range(df[metric].astype(float))
    if ylim is not None:
        opts["ylim"] = ylim
    return (curve * pts).opts(
        title=f"{metric} per retraining round", height=280, width=320, toolbar=None, **opts
    )


def class_counts(names: Sequence[str], counts: Sequence[int], colours: dict[str, str]) -> hv.Bars:
    """Bar chart of label counts per class."""
    df = pd.DataFrame({"class": list(names), "labels": list(counts)})
    return hv.Bars(df, "class", "labels").opts(
        color="class",
        cmap=colours,
        height=220,
        width=320,
        toolbar=None,
        xrotation=30,
        show_legend=False,
    )
