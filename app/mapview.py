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

import holoviews as hv
import numpy as np

from app.plots import MapStyle, render_view
from app.safe import in_thread

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


def _identity(data: hv.Element) -> hv.Element:
    return data


class ServerMap:
    """``dmap`` shows ``points`` styled by ``style``; attach selection streams to ``dmap``."""

    def __init__(
        self,
        points: hv.Points,
        style: MapStyle,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.points = points
        self.style = style
        self.on_error = on_error
        view: View = (tuple(x_range), tuple(y_range), DEFAULT_WIDTH, style.height)
        self.pipe = hv.streams.Pipe(data=render_view(points, style, *view))
        self.dmap = hv.DynamicMap(_identity, streams=[self.pipe])
        self.ranges = hv.streams.RangeXY(source=self.dmap)
        self.size = hv.streams.PlotSize(source=self.dmap)
        self.ranges.add_subscriber(self._on_view)
        self.size.add_subscriber(self._on_view)
        self._lock = threading.Lock()
        self._wanted: View = view
        self._drawn: View = view
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
            if self._busy or self._wanted == self._drawn:
                return
            self._busy = True
        in_thread(self._draw)

    def _draw(self) -> None:
        """Draw the newest wanted view until nothing newer is waiting (thread pool)."""
        while True:
            with self._lock:
                view = self._wanted
                if view == self._drawn:
                    self._busy = False
                    return
            try:
                element = render_view(self.points, self.style, *view)
            except Exception as exc:  # a failed draw must leave the map usable
                log.exception("map aggregation failed")
                with self._lock:
                    self._busy = False
                    self._drawn = view
                if self.on_error:
                    self.on_error(exc)
                return
            with self._lock:
                self._drawn = view
            self.pipe.send(element)
