"""Pure plot builders of the Sky view: arrays in, HoloViews elements out.

RA runs from right to left (east to the left, as on the sky); a survey across RA 0 is shown in
one piece (:func:`unwrap_ra`). The density layer counts objects per HEALPix pixel (cdshealpix,
the library under ``hats``' healpix helpers; ``hats`` itself is too heavy to import in a page)
at an order chosen from the survey's extent, drawn on a regular RA/Dec grid as objects per
square degree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import cdshealpix
import holoviews as hv
import holoviews.plotting.bokeh  # the options below are Bokeh's (also in notebooks)
import numpy as np
import pandas as pd
from astropy.coordinates import Latitude, Longitude
from holoviews.operation import datashader as hd

from app import plots

SKY_TOOLS = ["box_select", "lasso_select", "tap", "wheel_zoom", "pan", "reset"]
DENSITY_PIXELS = 40  # HEALPix pixels across the survey's larger side
MAX_ORDER = 12
GRID = 200  # cells across the density image
MAX_HIGHLIGHT = 20_000  # selected objects drawn one by one; beyond, HEALPix pixels of them
VIEW_PIXELS = 1_000_000  # HEALPix pixels (at most) a zoomed view's objects layer draws


@dataclass(frozen=True)
class SkyPositions:
    """Finite sky positions of a survey: RA (unwrapped, degrees), Dec and their row numbers."""

    ra: np.ndarray
    dec: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def sky_positions(table: pd.DataFrame) -> SkyPositions | None:
    """The objects of ``table`` with a finite ``ra``/``dec``; None when the catalog has no
    coordinates (no such columns, or none finite)."""
    if not {"ra", "dec"} <= set(table.columns):
        return None
    ra = pd.to_numeric(table["ra"], errors="coerce").to_numpy(np.float64)
    dec = pd.to_numeric(table["dec"], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if not ok.any():
        return None
    rows = np.flatnonzero(ok)
    return SkyPositions(unwrap_ra(ra[ok]), dec[ok], rows)


def unwrap_ra(ra: np.ndarray) -> np.ndarray:
    """RA in degrees, cut at the widest empty stretch of the circle: a survey across RA 0
    (e.g. 350°–10°) becomes -10°–10° instead of spanning the whole axis."""
    return ra_unwrapper(ra)(ra)


def ra_unwrapper(ra: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The :func:`unwrap_ra` cut of these RAs, to apply to others (the same survey's)."""
    ra = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    if len(ra) < 2:
        return lambda v: np.mod(np.asarray(v, dtype=np.float64), 360.0)
    ordered = np.unique(ra)
    gaps = np.diff(np.append(ordered, ordered[0] + 360.0))
    widest = int(np.argmax(gaps))
    start = ordered[(widest + 1) % len(ordered)]  # the first RA after the widest gap
    shift = 360.0 if start > 180.0 else 0.0

    def unwrap(v: np.ndarray) -> np.ndarray:
        v = np.mod(np.asarray(v, dtype=np.float64), 360.0)
        return np.where(v >= start, v, v + 360.0) - shift

    return unwrap


def healpix_pixels(order: int, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """NESTED HEALPix pixel numbers at ``order`` of positions in degrees (RA taken mod 360)."""
    lon = Longitude(np.mod(np.asarray(ra, dtype=np.float64), 360.0), unit=u.deg)
    lat = Latitude(np.asarray(dec, dtype=np.float64), unit=u.deg)
    return cdshealpix.lonlat_to_healpix(lon, lat, order).astype(np.int64)


def pixel_area_deg2(order: int) -> float:
    """Area of one HEALPix pixel at ``order``, in square degrees."""
    return float(4 * np.pi * (180 / np.pi) ** 2 / (12 * 4**order))


def healpix_order(ra: np.ndarray, dec: np.ndarray) -> int:
    """The HEALPix order whose pixels are about 1/``DENSITY_PIXELS`` of the survey's larger
    side (at least 0, at most ``MAX_ORDER``)."""
    width = float(np.ptp(ra)) * max(np.cos(np.deg2rad(np.median(dec))), 0.05)
    side = max(width, float(np.ptp(dec)), 1e-3)
    pixel = np.deg2rad(side / DENSITY_PIXELS)  # wanted pixel size (radians)
    order = np.floor(np.log2(np.sqrt(np.pi / 3) / pixel))  # pixels at least that large
    return int(np.clip(order, 0, MAX_ORDER))


def healpix_density(
    ra: np.ndarray, dec: np.ndarray, order: int, grid: int = GRID, scale: float = 1.0
) -> hv.Image:
    """Objects per square degree in the HEALPix pixel (``order``) of each cell of a ``grid`` wide
    RA/Dec image over the survey (RA may be unwrapped: taken modulo 360 for HEALPix); each
    position counts ``scale`` objects (a sample's)."""
    pixels, counts = np.unique(healpix_pixels(order, ra, dec), return_counts=True)
    return density_image(pixels, counts * float(scale), order, ra, dec, grid)


def density_image(
    pixels: np.ndarray,
    counts: np.ndarray,
    order: int,
    ra: np.ndarray,
    dec: np.ndarray,
    grid: int = GRID,
) -> hv.Image:
    """Objects per square degree of sorted HEALPix ``pixels`` (``order``) holding ``counts``,
    drawn on a ``grid`` wide RA/Dec image over the extent of positions ``ra``/``dec``."""
    x0, x1 = float(ra.min()), float(ra.max())
    y0, y1 = float(dec.min()), float(dec.max())
    pad = max(x1 - x0, y1 - y0, 1e-3) * 0.02
    x0, x1, y0, y1 = x0 - pad, x1 + pad, max(y0 - pad, -90.0), min(y1 + pad, 90.0)
    nx = grid
    ny = max(2, round(grid * (y1 - y0) / max(x1 - x0, 1e-6)))
    xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    gx, gy = np.meshgrid(xs, ys)
    pix = healpix_pixels(order, gx.ravel(), gy.ravel())
    at = np.minimum(np.searchsorted(pixels, pix), max(len(pixels) - 1, 0))
    hit = (pixels[at] == pix) if len(pixels) else np.zeros(len(pix), bool)
    per_cell = np.where(hit, np.asarray(counts, np.float64)[at] if len(pixels) else 0.0, 0.0)
    density = per_cell.reshape(ny, nx) / pixel_area_deg2(order)
    density = np.where(density > 0, density, np.nan)[::-1]  # Image rows run top to bottom
    return hv.Image(
        density, bounds=(x0, y0, x1, y1), kdims=["ra", "dec"], vdims=["objects per deg²"]
    )


def view_area_deg2(ra_range: tuple[float, float], dec_range: tuple[float, float]) -> float:
    """Area on the sphere of an RA/Dec zone (degrees; RA width capped at 360), in deg²."""
    width = np.deg2rad(min(max(ra_range[1] - ra_range[0], 0.0), 360.0))
    lo, hi = (np.deg2rad(np.clip(d, -90.0, 90.0)) for d in sorted(dec_range))
    return float(width * (np.sin(hi) - np.sin(lo)) * (180 / np.pi) ** 2)


def view_order(
    ra_range: tuple[float, float],
    dec_range: tuple[float, float],
    limit: int = VIEW_PIXELS,
    deepest: int = MAX_ORDER,
) -> int:
    """The deepest HEALPix order (at most ``deepest``) at which the zone holds at most
    ``limit`` pixels: the detail a view can draw at a bounded cost."""
    area = max(view_area_deg2(ra_range, dec_range), 1e-12)
    for order in range(deepest, -1, -1):
        if area / pixel_area_deg2(order) <= limit:
            return order
    return 0


def zone_ranges(
    ra_range: tuple[float, float], dec_range: tuple[float, float], order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint ranges [start, stop) of NESTED pixel numbers at ``order`` covering the
    RA/Dec zone (cdshealpix ``zone_search``; RA on the circle, a zone across RA 0 searched in
    two parts); pixels partly inside included."""
    ra0, ra1 = float(ra_range[0]), float(ra_range[1])
    dec0, dec1 = (float(np.clip(d, -90.0, 90.0)) for d in sorted(dec_range))
    top = 360.0 - 1e-9  # Longitude(360) wraps to 0
    if ra1 - ra0 >= 360.0:
        zones = [(0.0, top)]
    else:
        start = ra0 % 360.0
        stop = start + max(ra1 - ra0, 1e-9)
        zones = [(start, min(stop, top))] + ([(0.0, stop - 360.0)] if stop > 360.0 else [])
    starts, stops = [], []
    for lon0, lon1 in zones:
        ipix, depth, _ = cdshealpix.zone_search(
            Longitude(lon0, u.deg), Latitude(dec0, u.deg), Longitude(lon1, u.deg),
            Latitude(max(dec1, dec0 + 1e-9), u.deg), depth=order,
        )  # fmt: skip
        shift = 2 * (order - depth.astype(np.int64))
        starts.append(ipix.astype(np.int64) << shift)
        stops.append((ipix.astype(np.int64) + 1) << shift)
    lo, hi = np.concatenate(starts), np.concatenate(stops)
    keep = np.argsort(lo, kind="stable")
    lo, hi = lo[keep], np.maximum.accumulate(hi[keep])
    first = np.r_[True, lo[1:] >= hi[:-1]]  # the two zones' edge cells overlap: merged
    last = np.r_[first[1:], True]
    return lo[first], hi[last]


def counts_in_view(
    pixels: np.ndarray,
    counts: np.ndarray,
    stored: int,
    ra_range: tuple[float, float],
    dec_range: tuple[float, float],
    order: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, objects) at ``order`` (at most ``stored``) of the sorted non-empty pixels
    ``pixels`` of order ``stored`` holding ``counts`` that meet the RA/Dec zone, each with all
    its objects: the stored pixels of the zone's ranges (binary searches), summed to ``order``."""
    starts, stops = zone_ranges(ra_range, dec_range, order)  # whole pixels of ``order``
    shift = 2 * (stored - order)
    lo = np.searchsorted(pixels, starts << shift)
    hi = np.searchsorted(pixels, stops << shift)
    sizes = hi - lo
    if not sizes.sum():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ends = np.cumsum(sizes)
    at = np.arange(ends[-1]) + np.repeat(lo - (ends - sizes), sizes)  # the ranges' indices
    parent = np.asarray(pixels[at], np.int64) >> shift
    first = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
    return parent[first], np.add.reduceat(np.asarray(counts[at], np.int64), first)


def sky_points(ra: np.ndarray, dec: np.ndarray) -> hv.Points:
    """Every object at its sky position (to be datashaded)."""
    return hv.Points((ra, dec), kdims=["ra", "dec"])


def counted_points(ra: np.ndarray, dec: np.ndarray, counts: np.ndarray) -> hv.Points:
    """HEALPix pixel centres weighted by their objects (every object of a big survey), to be
    rasterized by summing ``objects`` (:func:`shaded` with ``aggregator="sum"``)."""
    return hv.Points((ra, dec, np.asarray(counts, np.float64)), kdims=["ra", "dec"],
                     vdims=["objects"])  # fmt: skip


def shaded(
    element: hv.DynamicMap | hv.Element, title: str = "", aggregator: Any = None
) -> hv.DynamicMap:
    """Rasterized on the server for each view (points counted per pixel, or ``aggregator``:
    a value or a bound function of the layer; a density image regridded), RA increasing to
    the left."""
    image = (
        hd.rasterize(element)
        if aggregator is None
        else hd.rasterize(element, aggregator=aggregator)
    )
    return hd.dynspread(image, **plots.SPREAD).opts(
        responsive=True, height=plots.MAP_HEIGHT, bgcolor=plots.MAP_BG, tools=SKY_TOOLS,
        active_tools=["pan", "wheel_zoom"], default_tools=[], toolbar="above",
        cmap=plots.visible_cmap("fire"), cnorm="eq_hist", colorbar=True, invert_xaxis=True,
        xlabel="RA (deg)", ylabel="Dec (deg)", title=title,
    )  # fmt: skip


def highlight(ra: np.ndarray, dec: np.ndarray, limit: int = MAX_HIGHLIGHT) -> hv.Points:
    """Selected objects drawn on top; beyond ``limit``, the centres of the HEALPix pixels
    holding them at the deepest order with at most ``limit`` of those (every object's place
    marked, none left out)."""
    ra, dec = highlight_positions(np.asarray(ra, np.float64), np.asarray(dec, np.float64), limit)
    pts = hv.Points((ra, dec), kdims=["ra", "dec"])
    return pts.opts(color=plots.ACCENT, size=4, line_color=None, alpha=0.9, tools=[])


def highlight_positions(
    ra: np.ndarray, dec: np.ndarray, limit: int = MAX_HIGHLIGHT
) -> tuple[np.ndarray, np.ndarray]:
    """The positions themselves up to ``limit``, else one mark per HEALPix pixel holding some
    (the deepest order with at most ``limit`` of them) at its objects' mean position (in the
    given RA frame, unwrapped or not)."""
    if len(ra) <= limit:
        return ra, dec
    deepest = healpix_pixels(MAX_ORDER, ra, dec)
    for order in range(MAX_ORDER, -1, -1):
        pixels, which = np.unique(deepest >> (2 * (MAX_ORDER - order)), return_inverse=True)
        if len(pixels) <= limit:
            break
    n = np.bincount(which, minlength=len(pixels))
    return (np.bincount(which, ra, len(pixels)) / n, np.bincount(which, dec, len(pixels)) / n)


def selection_outline(corners: list) -> hv.Path:
    """The box or lasso drawn on the sky."""
    return hv.Path([corners] if len(corners) else [], kdims=["ra", "dec"]).opts(
        color=plots.ACCENT, line_width=1.5, line_dash="dashed"
    )
