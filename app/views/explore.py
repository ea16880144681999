"""Explore: the datashaded latent map of a whole survey, selections, and the object detail."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from app import plots
from app.colouring import (
    DENSITY,
    LABELS,
    UNLABELLED,
    ColourSpec,
    categorical,
    category_colours,
    colour_specs,
)
from app.data import SurveyData
from app.detail import DetailPanel
from app.labelling import classifier_classes, schema_for
from app.mapview import Colouring, RowCategories, ServerMap, home_view, tile_categories, tiled_map
from app.safe import explain, guarded, heading, in_thread, message_pane, say
from app.selection import ArrayRows, box_indices, lasso_indices
from app.selectionpanel import SelectionPanel
from app.shading import category_rgb
from app.state import AppState
from app.widgets.gallery import DETAILS_CLASS
from backend.latent.tiles import box_polygon

HOVER_RADIUS = 0.015  # fraction of the visible x range
TAP_RADIUS = 0.04

HELP = """
**The latent map**: every object of the survey placed by its encoder embedding (UMAP), so
similar-looking galaxies sit together. Scroll to zoom, drag to pan; the map is re-aggregated
on the server for each view, whatever the survey size. Pick the **box** or **lasso** tool in
the toolbar and drag to select objects (their thumbnails appear below); **click** a point
to open its details on the right. *Colour by* switches between classes, uncertainties,
anomaly scores, labels, emulated properties and any catalog column.
"""


LEGEND_MAX = 12  # categories listed in the legend; the rest are counted as "+N more"


def legend_html(colour_key: dict[str, str], counts: pd.Series, title: str = "") -> str:
    """Swatches of a categorical colouring with the number of objects per category (those with
    objects, in the colour key's order), the first :data:`LEGEND_MAX` of them and then "+N
    more" (their names in its tooltip); ``title`` (the colouring's name) leads. Escaped."""
    shown = [(k, c, int(counts.get(k, 0))) for k, c in colour_key.items() if counts.get(k, 0)]
    rest = shown[LEGEND_MAX:]
    items = "".join(
        f"<span class='lsl-item'><i style='background:{html.escape(c)}'></i>"
        f"{html.escape(str(k))} <small>{n:,}</small></span>"
        for k, c, n in shown[:LEGEND_MAX]
    )
    if rest:
        names = html.escape(", ".join(str(k) for k, _, _ in rest), quote=True)
        items += f"<span class='lsl-more' title='{names}'>+{len(rest)} more</span>"
    head = f"<b class='lsl-title'>{html.escape(title)}</b>" if title else ""
    return f"<div class='lsl lsl-cat'>{head}{items}</div>"


LEGEND_CSS = """
.lsl { display: flex; flex-wrap: wrap; gap: 4px 14px; font: 12.5px system-ui, sans-serif; }
.lsl-item { display: inline-flex; align-items: center; gap: 5px; }
.lsl-cat { font-size: 13.5px; color: #0b1a33; }
.lsl-title { font-weight: 600; color: #334155; margin-right: 2px; }
.lsl-item i { width: 12px; height: 12px; border-radius: 3px; display: inline-block; }
.lsl-item small { color: #475569; font-size: 12px; }
.lsl-more { color: #475569; cursor: help; border-bottom: 1px dotted #94a3b8; }
.lsh { display: flex; gap: 8px; align-items: center; font: 12.5px system-ui, sans-serif;
       min-height: 48px; color: #334155; }
.lsh img { border-radius: 4px; background: #0f1420; }
.lsh code { font-size: 12.5px; color: #0b1a33; }
"""


def in_place(old: plots.MapStyle, new: plots.MapStyle) -> bool:
    """Whether a map drawn in ``old`` can be recoloured to ``new`` by pushing a new frame
    through its Pipe: any change of colouring, between kinds too (every frame has the same
    layers, see :func:`app.plots.map_frame`), as long as the figure keeps its colour bar (drawn
    under the map, shown for numbers and density) and height."""
    return old.colorbar == new.colorbar and old.height == new.height


@dataclass(frozen=True)
class Drawn:
    """A colouring as drawn: per-row values (None for density), the colour key of categories,
    the colour range of numbers, how the map paints it and the objects per category."""

    spec: ColourSpec
    values: Any = None
    colour_key: dict[str, str] = field(default_factory=dict)
    clim: tuple[float, float] | None = None
    colouring: Colouring | None = None
    counts: pd.Series | None = None


def legend_for(drawn: Drawn | None) -> str:
    """The legend under the map for a colouring as drawn (HTML, escaped)."""
    if drawn is None:
        return ""
    spec = drawn.spec
    if spec.kind == "cat":
        counts = pd.Series(drawn.values).value_counts() if drawn.counts is None else drawn.counts
        return legend_html(drawn.colour_key, counts, spec.label)
    if spec.kind == "num":
        lo, hi = drawn.clim
        return (
            f"<div class='lsl'>{html.escape(spec.label)}: mean per pixel; colour range "
            f"{lo:.3g} – {hi:.3g} (1st–99th percentile)</div>"
        )
    return "<div class='lsl'>Number of objects per pixel.</div>"


def hover_html(object_id: str | None, thumb: str = "", value: str = "") -> str:
    """The line above the map about the object under the cursor (HTML, escaped)."""
    if object_id is None:
        return "<div class='lsh'>No object under the cursor.</div>"
    return (
        f"<div class='lsh'><img src='{html.escape(thumb)}' width='48' height='48'>"
        f"<div>under the cursor: <code>{html.escape(object_id)}</code><br>"
        f"{html.escape(value)}</div></div>"
    )


HOVER_HINT = "<div class='lsh'>Hover over the map to see which object is under the cursor.</div>"


def value_text(drawn: Drawn | None, table: pd.DataFrame, i: int) -> str:
    """The colouring value of object ``i`` as drawn, as text (density: its predicted class)."""
    if drawn is None or drawn.values is None:
        return str(table["pred_class"].iat[i]) if "pred_class" in table else ""
    value = drawn.values[i]
    spec = drawn.spec
    if spec.kind == "num":
        return f"{spec.label}: {value:.3g}" if np.isfinite(value) else f"{spec.label}: —"
    return str(value)


class ExploreView(pn.viewable.Viewer):
    """Map + colouring + hover id + box/lasso selection gallery + tap detail + export/SAMP."""

    data = param.ClassSelector(class_=SurveyData, doc="the survey shown")
    state = param.ClassSelector(class_=AppState, doc="the session's shared state")
    colour_by = param.Selector(
        default=DENSITY.key, objects=[DENSITY.key],
        doc="what colours the map: a key of app.colouring.colour_specs (classes, "
        "uncertainties, scores, labels, emulated properties, catalog columns) or density",
    )  # fmt: skip
    hovered = param.Integer(
        default=-1, allow_None=True,
        doc="row under the cursor: None when no object is, -1 before the first hover",
    )  # fmt: skip
    drawn = param.ClassSelector(
        class_=Drawn, default=None, allow_None=True, doc="the colouring drawn on the map now"
    )
    figure = param.Parameter(default=None, doc="the map's HoloViews overlay (built once)")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self._specs = {
            s.key: s for s in self.data.memo("colour_specs", lambda: colour_specs(self.data.table))
        }
        groups: dict[str, dict[str, str]] = {}
        for spec in self._specs.values():
            groups.setdefault(spec.group, {})[spec.label] = spec.key
        self.param.colour_by.objects = list(self._specs)
        with param.parameterized.discard_events(self):  # drawn below, once the map exists
            self.colour_by = "pred_class" if "pred_class" in self._specs else DENSITY.key
        self.colour = pn.widgets.Select.from_param(
            self.param.colour_by, label="Colour by", options=[], groups=groups, width=280
        )
        self._legend = pn.pane.HTML(
            self.legend_text, stylesheets=[LEGEND_CSS], sizing_mode="stretch_width"
        )
        self._hover = pn.pane.HTML(
            self.hover_text, stylesheets=[LEGEND_CSS], sizing_mode="stretch_width"
        )
        self._ranges: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._pick_pipe = hv.streams.Pipe(data=self._picked_xy())
        self._shape_pipe = hv.streams.Pipe(data=[])
        self._sky_pipe = hv.streams.Pipe(data=self._sky_rows())  # the Sky view's selection
        self.state.param.watch(self._on_shared_selection, "selection")
        self._labels_seen = self.state.labels_changed
        self._labels_stale = False

        self.selection = SelectionPanel(
            describe=self._describe, on_clear=lambda: self._shape_pipe.send([]),
            data=self.data, state=self.state,
        )  # fmt: skip
        self.detail = DetailPanel(data=self.data, state=self.state, colours=self._class_colours())
        # big surveys with map tiles: views, picks and selections read only what they touch
        self._tiled = self.data.memo("tiled_map", lambda: tiled_map(self.data))
        if self.data.has_map:
            self._draw()
            # the first change of colouring need not wait for numba compilation
            plots.warm_up_later(self.data.x, self.data.y)
        else:
            self.selection.select(np.arange(len(self.data)), "first")
        self._map = pn.pane.HoloViews(  # as tall as the figure without a colour bar's room
            self.param.figure, sizing_mode="stretch_width", linked_axes=False,
            min_height=plots.MAP_HEIGHT - plots.BAR_ROOM + plots.NO_BAR_ROOM,
        )  # fmt: skip

    # -- colouring -------------------------------------------------------------------------
    def _class_colours(self) -> dict[str, str]:
        """One colour per class in every categorical colouring (predictions, labels and catalog
        columns alike): the label schema's, then the active classifier's other classes in its
        order (sdss_gz1's elliptical was red as a prediction, orange in its catalog column)."""
        try:
            colours = schema_for(self.data.name).colour_key()
        except Exception:  # a broken schema file must not hide the map
            colours = {}
        extra = [c for c in classifier_classes(self.data.name) if c not in colours]
        return {**colours, **category_colours(extra, colours)} if extra else colours

    def _colour_values(self, spec: ColourSpec) -> tuple[Any, dict[str, str], Any]:
        """(values for the map, colour key for categories, clim for numbers)."""
        if spec.kind == "count":
            return None, {}, None
        if spec.key == LABELS.key:
            values, key = self.data.label_categories(self._class_colours(), UNLABELLED)
            return values, key, None
        column = self.data.table[spec.column]
        if spec.kind == "cat":
            colours = self._class_colours()
            values, key = self.data.memo(("cat", spec.key), lambda: categorical(column, colours))
            return values, key, None

        def numbers() -> tuple[np.ndarray, tuple[float, float]]:  # tiled: read per object
            return self.data.number_values(spec.column, whole=self._tile_layer(spec) is None)

        values, clim = self.data.memo(("num", spec.key), numbers)
        return values, {}, clim

    def _tile_layer(self, spec: ColourSpec) -> str | None:
        """The tiles' layer of a colouring (pre-aggregated), else None."""
        tiles = self._tiled.tiles if self._tiled else None
        if tiles is None or spec.key == LABELS.key or spec.column is None:
            return None
        layer = tiles.layers.get(spec.column)
        return spec.column if layer is not None and layer.kind == spec.kind else None

    def _tiled_categories(self, spec: ColourSpec, layer: str) -> Drawn:
        """A tiled categorical colouring from its aggregates (no pass over the objects)."""
        counts = self._tiled.category_counts(layer)
        colours = self._class_colours()
        names = self._tiled.tiles.layers[layer].categories
        order, key, lut = tile_categories(names, counts, colours)
        ok = lut >= 0
        per = np.bincount(lut[ok], weights=counts[ok], minlength=len(order))
        colouring = Colouring(layer=layer, lut=lut, colours=category_rgb(order, key))
        values = RowCategories(self.data.table[spec.column], order)
        return Drawn(spec, values, key, None, colouring, pd.Series(per, index=order))

    def colouring_for(self, key: str) -> Drawn:
        """The colouring ``key`` ready to draw (values, colour key or range, map layers)."""
        spec = self._specs[key]
        layer = self._tile_layer(spec)
        if layer is not None and spec.kind == "cat":
            return self._tiled_categories(spec, layer)
        values, colour_key, clim = self._colour_values(spec)
        colouring = Colouring(layer=layer, values=values)
        if spec.kind == "cat":
            cats = values.categories
            colouring = Colouring(values=values, codes=np.asarray(values.codes),
                                  colours=category_rgb(list(cats), colour_key))  # fmt: skip
        return Drawn(spec, values, colour_key, clim, colouring)

    @param.depends("colour_by", watch=True)
    def _on_colour(self) -> None:
        guarded(self._alert)(self._recolour)()

    def _recolour(self) -> None:
        self._draw()
        self.selection.refresh()  # captions and borders follow the colouring

    def _draw(self) -> None:
        """Draw the map in the chosen colouring, keeping the current view: the first time the
        plot is built (map, outline, marker, streams); afterwards the same plot is recoloured
        in place when it can show the new style, so the browser only receives the new image
        (no new Bokeh figure)."""
        if not self.data.has_map:
            return
        drawn = self.colouring_for(self.colour_by)
        spec = drawn.spec
        clabel = spec.label if spec.kind == "num" else "objects per pixel"
        style = plots.MapStyle(
            spec.kind, colour_key=drawn.colour_key, cmap=spec.cmap, clim=drawn.clim, clabel=clabel
        )
        if self._tiled is not None:
            points = None
            draw = lambda view: self._tiled.draw(style, drawn.colouring, view)  # noqa: E731
        else:
            points, draw = plots.map_points(self.data.x, self.data.y, drawn.values), None
        current = getattr(self, "_server_map", None)
        if current is not None and in_place(current.style, style):
            current.restyle(style, points, draw)
        else:
            self.figure = self._build_figure(style, points, draw)
        self.drawn = drawn

    def _build_figure(self, style: plots.MapStyle, points: Any, draw: Any) -> hv.Overlay:
        """A new map figure: the server-shaded map, the Sky view's selection, the outline of
        this map's selection and the picked object's marker, with the map's streams."""
        on_error = lambda exc: say(self._alert, explain(exc), "danger")  # noqa: E731
        if self._tiled is not None:
            xlim, ylim = self._ranges or self._tiled.home()
        else:
            xlim, ylim = self._ranges or self.data.memo(
                "home", lambda: home_view(self.data.x, self.data.y)
            )
        self._server_map = ServerMap(points, style, xlim, ylim, on_error=on_error, draw=draw)
        shaded = self._server_map.dmap
        outline = hv.DynamicMap(self._outline, streams=[self._shape_pipe])
        marker = hv.DynamicMap(self._marker, streams=[self._pick_pipe])
        shared = hv.DynamicMap(lambda data: self.sky_selection(data), streams=[self._sky_pipe])
        self._attach_streams(self._server_map.source)
        return (shaded * shared * outline * marker).opts(hooks=[plots.bar_room])

    @property
    def _values(self) -> Any:
        return None if self.drawn is None else self.drawn.values

    @param.depends("drawn")
    def legend_text(self) -> str:
        """The legend of the colouring drawn (HTML)."""
        return legend_for(self.drawn)

    @param.depends("hovered")
    def hover_text(self) -> str:
        """The object under the cursor, its thumbnail and colouring value (HTML)."""
        i = self.hovered
        if i is not None and i < 0:
            return HOVER_HINT
        if i is None:
            return hover_html(None)
        return hover_html(self.data.object_id(i), self.data.thumb(i, 48), self._value_text(i))

    def _attach_streams(self, source: hv.DynamicMap) -> None:
        box = hv.streams.BoundsXY(source=source)
        lasso = hv.streams.Lasso(source=source)
        tap = hv.streams.Tap(source=source)
        pointer = hv.streams.PointerXY(source=source)
        ranges = hv.streams.RangeXY(source=source)
        box.add_subscriber(guarded(self._alert)(self._on_box))
        lasso.add_subscriber(guarded(self._alert)(self._on_lasso))
        tap.add_subscriber(guarded(self._alert)(self._on_tap))
        pointer.add_subscriber(guarded(self._alert)(self._on_pointer))
        ranges.add_subscriber(self._on_range)

    def _sky_rows(self) -> Any:
        """The rows the map marks for the Sky view: its selection, else None."""
        return self.state.selection if self.state.selection_from == "sky" else None

    def _on_shared_selection(self, *_: object) -> None:
        """Mark a selection made on the sky; one made here leaves the (empty) marks as they
        are, so the browser does not redraw the map before the gallery's pictures load."""
        rows = self._sky_rows()
        if rows is None and self._sky_pipe.data is None:
            return
        self._sky_pipe.send(rows)

    def sky_selection(self, rows: Any) -> hv.Points:
        """The objects selected on the sky (``state.selection`` shared by the Sky view) at
        their places on the latent map; nothing for a selection made here (its outline and
        gallery show it)."""
        shared = self.state.selection_from == "sky" and rows is not None and rows.count() > 0
        at = np.asarray(rows.all_rows(), dtype=np.int64) if shared else np.zeros(0, np.int64)
        return plots.shared_selection(self.data.x[at], self.data.y[at])

    @staticmethod
    def _outline(data: list) -> hv.Path:
        return hv.Path([data] if len(data) else []).opts(
            color=plots.ACCENT, line_width=1.5, line_dash="dashed"
        )

    @staticmethod
    def _marker(data: np.ndarray) -> hv.Points:
        xy = np.asarray(data, dtype=float).reshape(-1, 2)
        return plots.marker_overlay(xy[:, 0], xy[:, 1], size=14, marker="circle")

    def _picked_xy(self) -> np.ndarray:
        """Where the picked object is on the map ((1, 2); (0, 2) when none is)."""
        i = self.state.picked
        if i is None or not self.data.has_map or not 0 <= i < len(self.data):
            return np.zeros((0, 2))
        return np.array([[self.data.x[i], self.data.y[i]]])

    # -- map events --------------------------------------------------------------------------
    def _on_range(self, x_range: Any = None, y_range: Any = None) -> None:
        if x_range and y_range and None not in (*x_range, *y_range):
            self._ranges = (tuple(x_range), tuple(y_range))

    def _extent(self) -> float:
        if self._ranges:
            return abs(self._ranges[0][1] - self._ranges[0][0])
        if self._tiled is not None:
            return self._tiled.tiles.extent.width
        return float(np.ptp(self.data.x)) or 1.0

    def _nearest(self, x: float, y: float, radius: float) -> int | None:
        if self._tiled is not None:
            return self._tiled.nearest(x, y, radius)
        return self.data.nearest(x, y, radius)

    def _on_pointer(self, x: float | None = None, y: float | None = None) -> None:
        if x is not None and y is not None:
            self.hovered = self._nearest(x, y, HOVER_RADIUS * self._extent())

    def _on_tap(self, x: float | None = None, y: float | None = None) -> None:
        if x is None or y is None:
            return
        i = self._nearest(x, y, TAP_RADIUS * self._extent())
        if i is not None:
            in_thread(guarded(self._alert)(lambda: self.state.pick(i)))

    def _on_box(self, bounds: tuple | None = None) -> None:
        if not bounds or None in bounds:
            return
        x0, y0, x1, y1 = bounds
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]

        def work() -> None:
            if self._tiled is not None:  # counted from the tiles, listed page by page
                rows: Any = self._tiled.tiles.select(box_polygon(bounds))
            else:
                rows = ArrayRows(box_indices(self.data.x, self.data.y, bounds))
            self.selection.select(rows, "box")  # the gallery first: the browser then
            self._shape_pipe.send(corners)  # loads its pictures while it redraws the map

        in_thread(guarded(self._alert)(work))

    def _on_lasso(self, geometry: np.ndarray | None = None) -> None:
        if geometry is None or len(geometry) < 3:
            return
        poly = np.asarray(geometry, dtype=float)

        def work() -> None:
            if self._tiled is not None:
                rows: Any = self._tiled.tiles.select(poly)
            else:
                rows = ArrayRows(lasso_indices(self.data.x, self.data.y, poly))
            self.selection.select(rows, "lasso")
            self._shape_pipe.send([*map(tuple, poly), tuple(poly[0])])

        in_thread(guarded(self._alert)(work))

    @param.depends("state.picked", watch=True)
    def _on_pick(self) -> None:
        self._pick_pipe.send(self._picked_xy())
        if self.state.picked is not None:
            self.selection.refresh()

    @param.depends("state.labels_changed", "state.tab", watch=True)
    def _on_labels(self) -> None:
        """Recolour by labels when they changed, once this tab is shown (not on every label)."""
        if self.state.labels_changed != self._labels_seen:
            self._labels_seen, self._labels_stale = self.state.labels_changed, True
        if self._labels_stale and self.state.tab == "explore" and self.colour_by == LABELS.key:
            self._labels_stale = False
            guarded(self._alert)(self._draw)()

    # -- captions ------------------------------------------------------------------------------
    def _value_text(self, i: int) -> str:
        """The colouring value of object ``i``, as text."""
        return value_text(self.drawn, self.data.table, i)

    def _describe(self, i: int) -> tuple[str, str | None]:
        drawn = self.drawn
        key = drawn.colour_key if drawn is not None else {}
        colour = key.get(str(drawn.values[i])) if key else None
        return self._value_text(i), colour

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        problems = [
            pn.pane.Alert("\n".join(f"- {p}" for p in self.data.problems), alert_type="warning")
        ] if self.data.problems else []  # fmt: skip
        controls = pn.Row(self.colour, self._hover, sizing_mode="stretch_width")
        left = pn.Column(
            controls, self._map, self._legend, sizing_mode="stretch_width", min_width=420,
            visible=self.data.has_map, styles={"flex": "1 1 420px"},
        )  # fmt: skip
        right = pn.Column(
            heading("Object"),
            self.detail,
            width=430,
            sizing_mode="fixed",
            styles={"overflow": "auto"},
            css_classes=[DETAILS_CLASS],
        )
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            *problems,
            self._alert,
            pn.FlexBox(left, right, sizing_mode="stretch_width"),  # narrow: details below
            self.selection,
            sizing_mode="stretch_width",
        )
