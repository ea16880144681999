"""The latent map as a HoloViews DynamicMap fed from the thread pool.

A plain ``rasterize``/``datashade`` DynamicMap re-aggregates on the server's event loop for
every pan and zoom (HoloViews runs stream callbacks there), which stalls every session for the
length of a 10M-point aggregation. Here the RangeXY/PlotSize streams only record the view;
the aggregation (:func:`app.plots.render_view`) runs on the thread pool and the newest image
is pushed through a Pipe. Views that arrive while one is being drawn collapse into one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import holoviews as hv
import holoviews.operation.datashader as hd
import numpy as np
import pandas as pd

from app.data import SurveyData
from app.plots import MIN_ALPHA, SPREAD, MapStyle, map_frame, map_opts, map_points, render_view
from app.safe import in_thread
from app.shading import count_categories, shade
from backend.latent.errors import LatentError
from backend.latent.tiles import TileSet, ViewGrid

log = logging.getLogger(__name__)

View = tuple[tuple[float, float], tuple[float, float], int, int]
DEFAULT_WIDTH = 800


def home_view(x: np.ndarray, y: np.ndarray, pad: float = 0.04) -> tuple[tuple, tuple]:
    """(x_range, y_range) of the whole map with a margin of ``pad`` on each side."""
    ranges = []
    for v in (x, y):
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        margin = pad * ((hi - lo) or 1.0)
        ranges.append((lo - margin, hi + margin))
    return ranges[0], ranges[1]


def _picture(data: hv.Overlay) -> hv.Element:
    """The RGB layer of a map frame (:func:`app.plots.map_frame`)."""
    return data.get(0)


def _colours(data: hv.Overlay) -> hv.Element:
    """The colour-mapped layer of a map frame."""
    return data.get(1)


class ServerMap:
    """``dmap`` shows ``points`` styled by ``style`` (or what ``draw(view)`` returns: a tiled
    map); attach selection streams to ``source``.

    Each frame's two layers (:func:`app.plots.map_frame`) are two DynamicMaps on the same
    Pipe, shown together as ``dmap``: HoloViews links streams only to a DynamicMap that
    returns an element, and ``source`` (the picture layer) is one."""

    def __init__(
        self,
        points: hv.Points,
        style: MapStyle,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        on_error: Callable[[Exception], None] | None = None,
        draw: Callable[[View], hv.Element] | None = None,
    ) -> None:
        self.points = points
        self.style = style
        self.on_error = on_error
        self.draw = draw or (lambda v: render_view(self.points, self.style, *v))
        view: View = (tuple(x_range), tuple(y_range), DEFAULT_WIDTH, style.height)
        self.pipe = hv.streams.Pipe(data=map_frame(self.draw(view), style))
        self.source = hv.DynamicMap(_picture, streams=[self.pipe])
        self.dmap = self.source * hv.DynamicMap(_colours, streams=[self.pipe])
        self.ranges = hv.streams.RangeXY(source=self.source)
        self.size = hv.streams.PlotSize(source=self.source)
        self.ranges.add_subscriber(self._on_view)
        self.size.add_subscriber(self._on_view)
        self._lock = threading.Lock()
        self._wanted: View = view
        self._drawn: View = view
        self._generation = 0  # bumped by restyle: a drawn view of an older style is stale
        self._drawn_generation = 0
        self._busy = False

    @property
    def view(self) -> View:
        """The viewport last asked for: ((x0, x1), (y0, y1), width, height)."""
        return self._wanted

    def _on_view(self, **_: object) -> None:
        x_range, y_range = self.ranges.x_range, self.ranges.y_range
        with self._lock:
            old = self._wanted
            width = self.size.width or old[2]
            height = self.size.height or old[3]
            if not x_range or not y_range or None in (*x_range, *y_range):
                x_range, y_range = old[0], old[1]
            self._wanted = (tuple(x_range), tuple(y_range), int(width), int(height))
            if self._busy or self._current():
                return
            self._busy = True
        in_thread(self._draw)

    def _current(self) -> bool:
        """Whether the image shown is of the wanted view in the current style (lock held)."""
        return self._wanted == self._drawn and self._generation == self._drawn_generation

    def restyle(
        self,
        style: MapStyle,
        points: hv.Points | None = None,
        draw: Callable[[View], hv.Element] | None = None,
    ) -> None:
        """Colour the same map otherwise, in any kind of colouring: the view shown is drawn
        again in ``style`` and pushed through the same Pipe, so the browser keeps its plot and
        only gets the new image (see :func:`app.plots.map_frame`)."""
        with self._lock:
            self.points, self.style = points, style
            self.draw = draw or (lambda v: render_view(self.points, self.style, *v))
            self._generation += 1
            view, generation = self._wanted, self._generation
        element = map_frame(self.draw(view), style)
        with self._lock:
            if generation != self._generation:  # restyled again meanwhile: that one wins
                return
            self._drawn, self._drawn_generation = view, generation
        self.pipe.send(element)

    def _draw(self) -> None:
        """Draw the newest wanted view until nothing newer is waiting (thread pool)."""
        while True:
            with self._lock:
                view, generation, draw, style = (
                    self._wanted,
                    self._generation,
                    self.draw,
                    self.style,
                )
                if self._current():
                    self._busy = False
                    return
            try:
                element = map_frame(draw(view), style)
            except Exception as exc:  # a failed draw must leave the map usable
                log.exception("map aggregation failed")
                with self._lock:
                    self._busy = False
                    self._drawn, self._drawn_generation = view, generation
                if self.on_error:
                    self.on_error(exc)
                return
            with self._lock:
                if generation != self._generation:  # restyled while drawing: draw again
                    continue
                self._drawn, self._drawn_generation = view, generation
            self.pipe.send(element)


# -- the tiled map: views, picks and selections from backend.latent.tiles ------------------------
@dataclass(frozen=True)
class Colouring:
    """What a tiled view is coloured by: a pre-aggregated ``layer`` (with ``lut``: the app's
    category of each of the layer's categories), else per-row ``codes`` (categories) or
    ``values`` (numbers), drawn from the points."""

    layer: str | None = None
    lut: np.ndarray | None = None
    codes: np.ndarray | None = None  # per row, of a categorical colouring not tiled
    values: Any = None  # per row, what render_view colours by (Categorical or numbers)
    colours: np.ndarray | None = None  # (C, 3) rgb of the app's categories


class TiledMap:
    """Draws views of a survey's map from its tiles: aggregates of the tile level that matches
    the view, or the points of the partitions in view beyond the deepest level; answers picks
    from the partitions near the cursor."""

    def __init__(self, tiles: TileSet, x: np.ndarray, y: np.ndarray) -> None:
        self.tiles = tiles
        self.x, self.y = x, y  # all points in memory: drawn when a colouring is not tiled

    def home(self) -> tuple[tuple[float, float], tuple[float, float]]:
        e = self.tiles.extent
        return home_view(np.array([e.x0, e.x1]), np.array([e.y0, e.y1]))

    def category_counts(self, layer: str) -> np.ndarray:
        """Objects per category of a tiled categorical layer (level 0)."""
        e = self.tiles.extent
        grid = ViewGrid((e.x0, e.x1), (e.y0, e.y1), 1, 1)
        return self.tiles.aggregate(layer, grid, level=0).reshape(-1)

    def nearest(self, x: float, y: float, radius: float) -> int | None:
        """Row of the point nearest (x, y) within ``radius``, from the partitions around it."""
        if not np.isfinite([x, y, radius]).all():
            return None
        parts = self.tiles.partitions_in((x - radius, x + radius), (y - radius, y + radius))
        if not len(parts):
            return None
        got = self.tiles.read(parts, ["x", "y", "row"])
        d2 = (got["x"].astype(np.float64) - x) ** 2 + (got["y"].astype(np.float64) - y) ** 2
        k = int(np.argmin(d2)) if len(d2) else -1
        return int(got["row"][k]) if k >= 0 and d2[k] <= radius * radius else None

    def draw(self, style: MapStyle, colouring: Colouring, view: View) -> hv.Element:
        """The map image of ``view`` in ``style`` (same look as :func:`app.plots.render_view`)."""
        x_range, y_range, width, height = view
        grid = ViewGrid(tuple(x_range), tuple(y_range), int(width), int(height))
        deep = self.tiles.level_for(grid) > self.tiles.levels
        tiled = colouring.layer is not None or style.kind == "count"
        if not deep and not tiled:  # a colouring without tiles: every point, in memory
            points = map_points(self.x, self.y, colouring.values)
            return render_view(points, style, x_range, y_range, width, height)
        if style.kind == "cat":
            counts = self._category_counts(colouring, grid, deep)
            rgba = spread_rgba(shade(counts, colouring.colours, MIN_ALPHA))
            (x0, x1), (y0, y1) = grid.x_range, grid.y_range
            image = hv.RGB(rgba, bounds=(x0, y0, x1, y1), vdims=["R", "G", "B", "A"])
            return image.opts(**map_opts(style))
        elif style.kind == "num":
            n, total = self._sums(colouring, grid, deep)
            with np.errstate(invalid="ignore", divide="ignore"):
                image = _image(np.where(n > 0, total / n, np.nan), grid, "v")
        else:
            counts = self._counts(grid, deep)  # empty pixels are not drawn (NaN), as untiled
            image = _image(np.where(counts > 0, counts, np.nan), grid, "Count")
        return hd.dynspread(image, dynamic=False, **SPREAD).opts(**map_opts(style))

    def _points(self, grid: ViewGrid, columns: list[str]) -> dict[str, np.ndarray]:
        parts = self.tiles.partitions_in(grid.x_range, grid.y_range)
        return self.tiles.read(parts, ["x", "y", *columns])

    def _counts(self, grid: ViewGrid, deep: bool) -> np.ndarray:
        if not deep:
            return self.tiles.aggregate("count", grid)[0]
        got = self._points(grid, [])
        codes = np.zeros(len(got["x"]), dtype=np.int8)
        return count_categories(got["x"], got["y"], codes, 1, grid.x_range, grid.y_range,
                                grid.width, grid.height)[..., 0].astype(np.float64)  # fmt: skip

    def _category_counts(self, colouring: Colouring, grid: ViewGrid, deep: bool) -> np.ndarray:
        n_app = len(colouring.colours)
        if colouring.layer is not None and not deep:
            raw = self.tiles.aggregate(colouring.layer, grid)  # (K, H, W)
            out = np.zeros((grid.height, grid.width, n_app), dtype=np.uint32)
            for k, target in enumerate(colouring.lut):
                if target >= 0:
                    out[..., target] += raw[k].astype(np.uint32)
            return out
        if colouring.layer is not None:
            got = self._points(grid, [f"cat/{colouring.layer}"])
            codes = colouring.lut[got[f"cat/{colouring.layer}"]]
        else:
            got = self._points(grid, ["row"])
            codes = colouring.codes[got["row"]]
        return count_categories(got["x"], got["y"], np.asarray(codes), n_app, grid.x_range,
                                grid.y_range, grid.width, grid.height)  # fmt: skip

    def _sums(self, colouring: Colouring, grid: ViewGrid, deep: bool) -> tuple[np.ndarray, ...]:
        if colouring.layer is not None and not deep:
            n, total = self.tiles.aggregate(colouring.layer, grid)
            return n, total
        if colouring.layer is not None:
            got = self._points(grid, [f"num/{colouring.layer}"])
            values = got[f"num/{colouring.layer}"]
        else:
            got = self._points(grid, ["row"])
            values = colouring.values[got["row"]]
        return _pixel_sums(got["x"], got["y"], values, grid)


def spread_rgba(rgba: np.ndarray) -> np.ndarray:
    """``hd.dynspread(**SPREAD)`` of an RGBA picture, on the array (datashader's own
    ``dynspread``, as HoloViews calls it, without building and cloning elements)."""
    import datashader.transfer_functions as tf

    height, width = rgba.shape[:2]
    packed = np.ascontiguousarray(rgba).reshape(height * width, 4).view(np.uint32)
    spread = tf.dynspread(tf.Image(packed.reshape(height, width)), **SPREAD).data
    out = np.ascontiguousarray(spread).view(np.uint8).reshape(height, width, 4).copy()
    out[out[:, :, 3] == 0] = 0
    return out


def _pixel_sums(x: np.ndarray, y: np.ndarray, v: np.ndarray, grid: ViewGrid) -> tuple:
    """(count of finite values, their sum) per pixel, row 0 = bottom."""
    (x0, x1), (y0, y1) = grid.x_range, grid.y_range
    col = np.floor((x.astype(np.float64) - x0) * (grid.width / (x1 - x0))).astype(np.int64)
    row = np.floor((y.astype(np.float64) - y0) * (grid.height / (y1 - y0))).astype(np.int64)
    ok = (col >= 0) & (col < grid.width) & (row >= 0) & (row < grid.height) & np.isfinite(v)
    pix = row[ok] * grid.width + col[ok]
    size = grid.width * grid.height
    n = np.bincount(pix, minlength=size).reshape(grid.height, grid.width).astype(np.float64)
    total = np.bincount(pix, weights=v[ok].astype(np.float64), minlength=size)
    return n, total.reshape(grid.height, grid.width)


def _image(agg: np.ndarray, grid: ViewGrid, vdim: str) -> hv.Image:
    """An hv.Image of a (height, width) aggregate whose row 0 is the bottom of the view."""
    (x0, x1), (y0, y1) = grid.x_range, grid.y_range
    xs = x0 + (np.arange(grid.width) + 0.5) * (x1 - x0) / grid.width
    ys = y0 + (np.arange(grid.height) + 0.5) * (y1 - y0) / grid.height
    return hv.Image((xs, ys, agg), kdims=["x", "y"], vdims=[vdim])


def tile_categories(
    names: tuple[str, ...], counts: np.ndarray, colours: dict[str, str] | None
) -> tuple[list[str], dict[str, str], np.ndarray]:
    """The app's categories of a tiled layer, as :func:`app.colouring.categorical` makes them
    from the objects: (categories, colour key, lut: app category of each layer category)."""
    from app.colouring import MAX_CATEGORIES, MISSING, OTHER, category_colours

    present = [(n, int(c)) for n, c in zip(names, counts, strict=True) if c > 0]
    named = [n for n, _ in sorted(present, key=lambda t: -t[1]) if n not in ("", MISSING, OTHER)]
    named = named[: MAX_CATEGORIES - 2]
    order = [c for c in (colours or {}) if c in set(named)]
    order += sorted(c for c in named if c not in order)
    has_other = any(n not in named and n not in ("", MISSING) for n, _ in present)
    has_missing = any(n in ("", MISSING) for n, _ in present)
    order += [c for c, there in ((OTHER, has_other), (MISSING, has_missing)) if there]
    if len(order) < 2:
        order.append(OTHER if OTHER not in order else MISSING)
    index = {c: i for i, c in enumerate(order)}
    lut = np.array(
        [index.get(n, index.get(MISSING if n in ("", MISSING) else OTHER, -1)) for n in names],
        dtype=np.int64,
    )
    return order, category_colours(order, colours), lut


def tiled_map(data: SurveyData) -> TiledMap | None:
    """The tiled map of a survey, when it is big enough (``LATENTSKY_TILED_MAP_ABOVE``) and its
    tiles are made and current (else None: every point is drawn, as for small surveys)."""
    from backend.config import tiled_map_threshold
    from backend.latent.tiles_product import open_tiles
    from backend.pipeline.planner import plan

    if not data.has_map or not data.encoder or len(data) < tiled_map_threshold():
        return None
    try:
        item = plan(data.name, ["tiles"]).items.get(f"tiles/encoder-{data.encoder}")
        if item is None or item.status != "current":
            return None
        tiles = open_tiles(data.name, data.encoder)
    except (LatentError, OSError, ValueError) as exc:
        log.warning("map tiles of %s not used: %s", data.name, exc)
        return None
    if tiles is None or tiles.meta.get("rows") != len(data):
        return None
    return TiledMap(tiles, data.x, data.y)


class RowCategories:
    """The app's category of each object of a tiled colouring, read one object at a time
    (``values[i]``) from its column, as :func:`app.colouring.categorical` would name it."""

    def __init__(self, column: pd.Series, categories: list[str]) -> None:
        self.column, self.categories = column, set(categories)

    def __getitem__(self, i: int) -> str:
        from app.colouring import MISSING, OTHER

        raw = self.column.iat[int(i)]
        text = "" if pd.isna(raw) else str(raw)
        if not text.strip():
            return MISSING
        return text if text in self.categories else OTHER
