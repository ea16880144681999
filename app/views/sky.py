"""Sky: the survey at its RA/Dec (datashaded objects or a HEALPix density), linked both ways
with the Explore map through :attr:`AppState.selection`.

A box or lasso on the sky publishes its objects (Explore's selection gallery shows them); a
selection on the latent map is highlighted here. A click picks the nearest object; its card
links to the Legacy Survey viewer, ESASky and SIMBAD (links only: :mod:`app.skylinks`).
"""

from __future__ import annotations

import html
import threading
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from app import sky_plots
from app.data import SurveyData
from app.safe import guarded, in_thread, message_pane
from app.selection import ArrayRows, box_indices, lasso_indices
from app.skylinks import links_html
from app.state import AppState

OBJECTS, DENSITY = "objects", "HEALPix density"
TAP_RADIUS = 0.02  # fraction of the survey's larger side
DRAW_PIXELS = 2_000_000  # HEALPix pixels (at most) a big survey's objects layer draws
VIEW_OBJECTS = 200_000  # a zoomed view of at most this many objects draws them, not pixels,
VIEW_GROUPS = 16  # when the catalog's RA/Dec statistics leave at most this many row groups
HIGHLIGHT_ROWS = 200_000  # a latent-map selection's positions read (an even sample beyond)
SAMPLE_GROUPS = 16  # row groups a paged survey's sky reads (~1M objects of 65,536-row groups)
NO_SKY = (
    "This survey's catalog has no sky coordinates (no <code>ra</code>/<code>dec</code> columns, "
    "or none with a value), so there is nothing to show on the sky."
)
HELP = """
**The sky**: every object at its position (RA increases to the left). Pick the **box** or
**lasso** tool and drag to select objects: the *Explore* tab's gallery shows them. A selection
made on the latent map in *Explore* is highlighted here in orange. **Click** an object for its
card with links to sky viewers. *HEALPix density* counts objects per HEALPix pixel.
"""
CARD_CSS = """
.lsk { font: 13px/1.5 system-ui, sans-serif; color: #1f2937; }
.lsk code { color: #0b1a33; }
.lsk-dim { color: #6b7280; font-size: 12px; }
"""


class SkyView(pn.viewable.Viewer):
    """The survey on the sky beside the latent map."""

    data = param.ClassSelector(class_=SurveyData, doc="the survey shown")
    state = param.ClassSelector(class_=AppState, doc="the session's shared state")
    layer = param.Selector(
        default=OBJECTS, objects=[OBJECTS, DENSITY],
        doc="objects: every object, counted per screen pixel; HEALPix density: objects per "
        "square degree in HEALPix pixels of an order chosen from the survey's extent",
    )  # fmt: skip
    shape = param.List(default=[], precedence=-1, doc="outline of the latest sky selection")
    detail = param.String(default="", precedence=-1, doc="what the objects layer draws now")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self.positions = self.data.memo("sky_positions", lambda: sky_positions_of(self.data))
        # a big survey's sky: every object from the HEALPix counts written with its catalog;
        # a bounded sample of its rows when the survey has none (written before them)
        self.counts = self.data.memo("sky_counts", lambda: sky_counts_of(self.data))
        self.sampled = self.data.paged and self.counts is None
        self.plot: hv.Overlay | None = None
        self._drawn: tuple[Any, np.ndarray, np.ndarray] | None = None  # a sky selection's
        self._marked: tuple[Any, np.ndarray, np.ndarray] | None = None  # a map selection's
        self._marks_lock = threading.Lock()
        if self.positions is None:
            return
        aggregator = None
        if self.counts is not None:
            self.draw_order, cra, cdec, self.drawn_counts = self.data.memo(
                "sky_drawn", lambda: drawn_counts(self.counts)
            )
            self.unwrap = sky_plots.ra_unwrapper(cra)
            self.centres = (self.unwrap(cra), cdec)
            pos = self.positions
            self.positions = sky_plots.SkyPositions(self.unwrap(pos.ra), pos.dec, pos.rows)
            aggregator = pn.bind(lambda layer: "mean" if layer == DENSITY else "sum",
                                 self.param.layer)  # fmt: skip
        pos = self.positions
        self.order = sky_plots.healpix_order(
            *(self.centres if self.counts is not None else (pos.ra, pos.dec))
        )
        self._tree: Any = None
        if self.counts is not None:  # a map selection's positions read as it is made
            self.state.param.watch(self._prefetch_marks, "selection")
        # a big survey's objects layer follows the view: deeper pixels, or the objects
        streams = [hv.streams.RangeXY()] if self.counts is not None else []
        base = sky_plots.shaded(
            hv.DynamicMap(pn.bind(self.base, layer=self.param.layer), streams=streams),
            aggregator=aggregator,
        )
        marks = hv.DynamicMap(pn.bind(self.highlighted, rows=self.state.param.selection))
        outline = hv.DynamicMap(
            pn.bind(self.outline, shape=self.param.shape, rows=self.state.param.selection)
        )
        self.plot = base * marks * outline
        box = hv.streams.BoundsXY(source=base)
        lasso = hv.streams.Lasso(source=base)
        tap = hv.streams.Tap(source=base)
        box.add_subscriber(guarded(self._alert)(self._on_box))
        lasso.add_subscriber(guarded(self._alert)(self._on_lasso))
        tap.add_subscriber(guarded(self._alert)(self._on_tap))

    # -- plot pipeline -----------------------------------------------------------------------
    def base(
        self, layer: str, x_range: tuple | None = None, y_range: tuple | None = None
    ) -> hv.Element:
        """The layer chosen: the objects' positions or the HEALPix density image; a big
        survey's objects for the view's RA/Dec ranges (:meth:`objects_in_view`)."""
        pos = self.positions
        if self.counts is not None:
            ra, dec = self.centres
            if layer == DENSITY:
                pixels, counts = self.counts.at_order(self.order)
                return self.data.memo(
                    ("sky_density", self.order),
                    lambda: sky_plots.density_image(pixels, counts, self.order, ra, dec),
                )
            return self.objects_in_view(x_range, y_range)
        if layer == DENSITY:
            scale = len(self.data) / max(1, len(pos)) if self.sampled else 1.0
            return self.data.memo(
                ("sky_density", self.order),
                lambda: sky_plots.healpix_density(pos.ra, pos.dec, self.order, scale=scale),
            )
        return sky_plots.sky_points(pos.ra, pos.dec)

    def objects_in_view(self, x_range: tuple | None, y_range: tuple | None) -> hv.Points:
        """Every object of a big survey in the view (unwrapped RA ``x_range``, Dec
        ``y_range``), weighted for summing: the survey-wide pixels (:func:`drawn_counts`)
        unless the view is small enough for a deeper order; the stored order's pixels in the
        view (at most :data:`sky_plots.VIEW_PIXELS`); and, when the view holds at most
        :data:`VIEW_OBJECTS` objects in at most :data:`VIEW_GROUPS` catalog row groups, the
        objects themselves. Sets :attr:`detail` to what is drawn."""
        ra, dec = self.centres
        stored = self.counts.order
        known = x_range is not None and y_range is not None and None not in (*x_range, *y_range)
        order = -1
        if known:
            rr = (min(x_range), max(x_range))
            dr = (max(min(y_range), -90.0), min(max(y_range), 90.0))
            order = sky_plots.view_order(rr, dr, sky_plots.VIEW_PIXELS, stored)
        if not known or (order < stored and order <= self.draw_order):
            self.detail = f"The whole survey: {_pixels_text(self.draw_order)}"
            return sky_plots.counted_points(ra, dec, self.drawn_counts)
        pixels, objects = sky_plots.counts_in_view(
            self.counts.pixels, self.counts.counts, stored, rr, dr, order
        )  # fmt: skip
        if order == stored and objects.sum() <= VIEW_OBJECTS:  # past the pixels: the objects
            found = self.catalog_in_view(rr, dr)
            if found is not None:
                self.detail = f"This view: its {len(found[0]):,} objects, read from the catalog."
                return sky_plots.counted_points(*found, np.ones(len(found[0])))
        from backend.survey.skycounts import centres_of

        c_ra, c_dec = centres_of(pixels, order)
        self.detail = f"This view: {_pixels_text(order)}"
        return sky_plots.counted_points(self.unwrap(c_ra), c_dec, objects)

    def catalog_in_view(
        self, ra_range: tuple[float, float], dec_range: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(unwrapped RA, Dec) of the catalog's objects in the RA/Dec box, read from the row
        groups its RA/Dec statistics allow; None when more than :data:`VIEW_GROUPS` (a
        catalog not in sky order: too dear for a pan)."""
        from backend.latent.sky import PagedSkyIndex

        index = self.data.memo("sky_paged_index", lambda: PagedSkyIndex(self._catalog_path()))
        groups = index.groups_meeting(ra_range, dec_range)
        if len(groups) > VIEW_GROUPS:
            return None
        rows = np.concatenate(
            [np.arange(index.starts[g], index.starts[g + 1]) for g in groups] or [[]]
        ).astype(np.int64)
        frame = self.data.table.rows(rows, ["ra", "dec"])
        ra = self.unwrap(pd.to_numeric(frame["ra"], errors="coerce").to_numpy(np.float64))
        dec = pd.to_numeric(frame["dec"], errors="coerce").to_numpy(np.float64)
        inside = box_indices(ra, dec, (ra_range[0], dec_range[0], ra_range[1], dec_range[1]))
        return ra[inside], dec[inside]

    def position_of(self, rows: np.ndarray) -> np.ndarray:
        """Positions (into :attr:`positions`) of table ``rows``; -1 where none (no coordinates,
        or not in a big survey's sample). The positions' rows are sorted: a binary search."""
        rows = np.asarray(rows, dtype=np.int64)
        have = self.positions.rows
        at = np.minimum(np.searchsorted(have, rows), max(0, len(have) - 1))
        return np.where(have[at] == rows, at, -1) if len(have) else np.full(len(rows), -1)

    def selected_positions(self, rows: Any) -> np.ndarray:
        """Positions (into :attr:`positions`) of the selected rows that have coordinates."""
        if rows is None or not rows.count():
            return np.zeros(0, dtype=np.int64)
        where = self.position_of(np.asarray(rows.all_rows(), dtype=np.int64))
        return where[where >= 0]

    def highlighted(self, rows: Any) -> hv.Points:
        """The shared selection, drawn on top."""
        if self._drawn is not None and rows is self._drawn[0]:  # the sky's own: every object
            return sky_plots.highlight(self._drawn[1], self._drawn[2])
        if self.counts is not None:  # a big survey: the selection's own positions
            _, ra, dec = self.marked(rows)
            return sky_plots.highlight(ra, dec)
        at = self.selected_positions(rows)
        return sky_plots.highlight(self.positions.ra[at], self.positions.dec[at])

    def marked(self, rows: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        """(rows, unwrapped RA, Dec) of a big survey's selection made elsewhere: the RA/Dec of
        its rows read by row group (only the groups holding them; an even
        :data:`HIGHLIGHT_ROWS` of them for a larger selection), kept for the latest one."""
        with self._marks_lock:  # one read per selection (a prefetch and a render may race)
            if self._marked is None or self._marked[0] is not rows:
                self._marked = self._read_marks(rows)
            return self._marked

    def _read_marks(self, rows: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        """What :meth:`marked` keeps, read now."""
        n = 0 if rows is None else int(rows.count())
        ra = dec = np.zeros(0)
        if n:
            take = np.asarray(rows.all_rows(), np.int64)
            if n > HIGHLIGHT_ROWS:
                take = take[np.linspace(0, n - 1, HIGHLIGHT_ROWS).astype(np.int64)]
            frame = self.data.table.rows(take, ["ra", "dec"])
            ra = pd.to_numeric(frame["ra"], errors="coerce").to_numpy(np.float64)
            dec = pd.to_numeric(frame["dec"], errors="coerce").to_numpy(np.float64)
            ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
            ra, dec = self.unwrap(ra[ok]), dec[ok]
        return rows, ra, dec

    def _prefetch_marks(self, event: Any) -> None:
        """Read a new map selection's positions on the server's pool, off the page's render
        (seconds for a selection spread over every row group of 10^8 objects)."""
        rows = event.new
        if (
            rows is None
            or self.state.selection_from == "sky"
            or self.state.survey != self.data.name
        ):
            return
        in_thread(guarded(self._alert)(lambda: self.marked(rows)))

    def outline(self, shape: list, rows: Any) -> hv.Path:
        """The sky's box or lasso while its selection is the one shared."""
        mine = self.state.selection_from == "sky" and rows is not None and rows.count() > 0
        return sky_plots.selection_outline(shape if mine else [])

    # -- selections ----------------------------------------------------------------------------
    def select_positions(self, at: np.ndarray, shape: list) -> None:
        """Share the objects at positions ``at`` (sorted table rows) as the sky's selection."""
        self.shape = shape
        rows = np.sort(self.positions.rows[at])
        self.state.share_selection(ArrayRows(rows), "sky")

    def select_every(self, inside: Any, shape: list) -> None:
        """Share every object of a big survey inside the sky's shape (``inside(ra, dec)`` on
        unwrapped RA) as the sky's selection: the catalog's row groups whose RA/Dec
        statistics meet the shape are read (:meth:`PagedSkyIndex.rows_in`)."""
        from backend.latent.sky import PagedSkyIndex

        index = self.data.memo("sky_paged_index", lambda: PagedSkyIndex(self._catalog_path()))
        xs, ys = [p[0] for p in shape], [p[1] for p in shape]
        rows, ra, dec = index.rows_in(
            (min(xs), max(xs)), (min(ys), max(ys)), lambda r, d: inside(self.unwrap(r), d)
        )
        chosen = ArrayRows(rows)
        self._drawn = (chosen, self.unwrap(ra), dec)
        self.shape = shape
        self.state.share_selection(chosen, "sky")

    def _catalog_path(self) -> Any:
        return self.data.survey.path / "catalog.parquet"

    def _on_box(self, bounds: tuple | None = None) -> None:
        if not bounds or None in bounds:
            return
        x0, y0, x1, y1 = bounds
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        if self.counts is not None:
            inside = lambda r, d: _mask(len(r), box_indices(r, d, bounds))  # noqa: E731
            in_thread(guarded(self._alert)(lambda: self.select_every(inside, corners)))
            return
        at = box_indices(self.positions.ra, self.positions.dec, bounds)
        in_thread(guarded(self._alert)(lambda: self.select_positions(at, corners)))

    def _on_lasso(self, geometry: np.ndarray | None = None) -> None:
        if geometry is None or len(geometry) < 3:
            return
        poly = np.asarray(geometry, dtype=float)
        shape = [*map(tuple, poly), tuple(poly[0])]
        if self.counts is not None:
            inside = lambda r, d: _mask(len(r), lasso_indices(r, d, poly))  # noqa: E731
            in_thread(guarded(self._alert)(lambda: self.select_every(inside, shape)))
            return
        at = lasso_indices(self.positions.ra, self.positions.dec, poly)
        in_thread(guarded(self._alert)(lambda: self.select_positions(at, shape)))

    def nearest(self, ra: float, dec: float, radius: float) -> int | None:
        """Table row of the object nearest (``ra``, ``dec``) within ``radius`` degrees."""
        if not np.isfinite([ra, dec, radius]).all():
            return None
        if self.counts is not None:  # every object: a cone search over the catalog's groups
            from astropy.coordinates import SkyCoord

            from backend.latent.sky import PagedSkyIndex

            index = self.data.memo("sky_paged_index", lambda: PagedSkyIndex(self._catalog_path()))
            where = SkyCoord(float(ra) % 360.0, float(np.clip(dec, -90, 90)), unit="deg")
            found = index.nearest(where, radius * 3600.0)
            return None if found is None else int(found[0])
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(np.column_stack([self.positions.ra, self.positions.dec]))
        dist, i = self._tree.query([ra, dec], k=1, distance_upper_bound=radius)
        return int(self.positions.rows[i]) if np.isfinite(dist) else None

    def _on_tap(self, x: float | None = None, y: float | None = None) -> None:
        if x is None or y is None:
            return
        ra, dec = (
            self.centres if self.counts is not None else (self.positions.ra, self.positions.dec)
        )
        side = max(float(np.ptp(ra)), float(np.ptp(dec)), 1e-3)
        i = self.nearest(x, y, TAP_RADIUS * side)
        if i is not None:
            in_thread(guarded(self._alert)(lambda: self.state.pick(i)))

    # -- text --------------------------------------------------------------------------------
    def count_text(self, rows: Any) -> str:
        """How many objects are selected, where, and how many of them have a sky position."""
        n = 0 if rows is None else int(rows.count())
        if not n:
            return "**No selection.** Select on the sky here or on the latent map in *Explore*."
        where = "on the sky" if self.state.selection_from == "sky" else "on the latent map"
        mine = self._drawn is not None and rows is self._drawn[0]
        if not mine and self.counts is not None:  # a big survey: the selection's positions
            read = len(self.marked(rows)[1])
            if n > HIGHLIGHT_ROWS:
                return (f"**{n:,} objects selected** {where} (drawn: the positions of an "
                        f"even {HIGHLIGHT_ROWS:,} of them)")  # fmt: skip
            missing = f" ({n - read:,} without a sky position)" if read < n else ""
            return f"**{n:,} objects selected** {where}{missing}"
        shown = n if mine else len(self.selected_positions(rows))
        without = (
            "not drawn: outside the sky's sample" if self.data.paged else "without a sky position"
        )
        missing = f" ({n - shown:,} {without})" if shown < n else ""
        return f"**{n:,} objects selected** {where}{missing}"

    def card(self, picked: int | None) -> str:
        """The picked object: id, position and links to sky viewers (escaped)."""
        if picked is None or not 0 <= picked < len(self.data):
            return "<div class='lsk lsk-dim'>Click an object on the sky to see its card.</div>"
        oid = html.escape(self.data.object_id(picked))
        ra, dec = (_number(self.data.table[c].iat[picked]) for c in ("ra", "dec"))
        if not (np.isfinite([ra, dec]).all() and abs(dec) <= 90):
            return f"<div class='lsk'><code>{oid}</code>: no sky position.</div>"
        where = f"RA {ra:.5f}°, Dec {dec:+.5f}°"
        if not self.data.has_real_sky:
            links = "<span class='lsk-dim'>simulated coordinates: no real sky to look at</span>"
        else:
            links = links_html(ra, dec)
        return f"<div class='lsk'><code>{oid}</code> · {where}<br>{links}</div>"

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        if self.positions is None:
            return pn.pane.Alert(NO_SKY, alert_type="info", sizing_mode="stretch_width")
        note = []
        if self.counts is not None:
            note.append(pn.pane.Alert(
                f"A big survey: every object is drawn, counted in HEALPix pixels of order "
                f"{self.draw_order} (about {_pixel_arcmin(self.draw_order):.1f}′). Zoom in for "
                f"finer pixels, down to order {self.counts.order} "
                f"({_pixel_arcmin(self.counts.order):.2f}′), and for the objects themselves "
                f"where a view holds at most {VIEW_OBJECTS:,} of them in a few catalog row groups.",
                alert_type="light", sizing_mode="stretch_width",
            ))  # fmt: skip
        if self.sampled:
            note.append(pn.pane.Alert(
                f"A big survey: the sky shows a sample of {len(self.positions):,} of its "
                f"{len(self.data):,} objects ({SAMPLE_GROUPS} row groups spread over the "
                "catalog); selections here select from that sample.",
                alert_type="light", sizing_mode="stretch_width",
            ))  # fmt: skip
        if not self.data.has_real_sky:
            note += [pn.pane.Alert(
                "These are simulated coordinates (GalSim demo survey): the layout is real, the "
                "sky is not.", alert_type="light", sizing_mode="stretch_width",
            )]  # fmt: skip
        layer = pn.widgets.RadioButtonGroup.from_param(self.param.layer, color="light")
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            *note,
            self._alert,
            pn.Row(layer, pn.pane.Markdown(pn.bind(self.count_text, self.state.param.selection))),
            pn.pane.HoloViews(self.plot, sizing_mode="stretch_width", linked_axes=False),
            pn.pane.Markdown(self.param.detail, styles={"font-size": "12px", "color": "#6b7280"}),
            pn.pane.HTML(pn.bind(self.card, self.state.param.picked), stylesheets=[CARD_CSS],
                         sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )  # fmt: skip


def sky_positions_of(data: SurveyData) -> sky_plots.SkyPositions | None:
    """The sky positions drawn: every object's, or for a paged (big) survey those of
    :data:`SAMPLE_GROUPS` row groups spread over its catalog (a bounded read)."""
    if not data.paged:
        return sky_plots.sky_positions(data.table)
    if not {"ra", "dec"} <= set(data.table.columns):
        return None
    rows, frame = data.table.sample_rows(["ra", "dec"], SAMPLE_GROUPS)  # type: ignore[union-attr]
    found = sky_plots.sky_positions(frame)
    if found is None:
        return None
    return sky_plots.SkyPositions(found.ra, found.dec, rows[found.rows])


def sky_counts_of(data: SurveyData) -> Any:
    """A paged survey's HEALPix counts of every object (written with its catalog), else None."""
    if not data.paged:
        return None
    from backend.survey.skycounts import read_sky_counts

    found = read_sky_counts(data.survey.path / "catalog.parquet", len(data))
    return found if found is not None and len(found.pixels) else None


def drawn_counts(counts: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(order, centre RA, centre Dec, objects) of the pixels the objects layer draws: the
    deepest order with at most :data:`DRAW_PIXELS` non-empty pixels (a view's cost bounded)."""
    from backend.survey.skycounts import centres_of

    order = counts.order_within(DRAW_PIXELS)
    pixels, objects = counts.at_order(order)
    ra, dec = centres_of(pixels, order)
    return order, ra, dec, objects


def _mask(n: int, at: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[at] = True
    return mask


def _pixels_text(order: int) -> str:
    return (
        f"every object counted in HEALPix pixels of order {order} (~{_pixel_arcmin(order):.2f}′)."
    )


def _pixel_arcmin(order: int) -> float:
    return float(np.sqrt(sky_plots.pixel_area_deg2(order)) * 60.0)


def _number(value: Any) -> float:
    """A catalog value as a float (NaN when it is not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
