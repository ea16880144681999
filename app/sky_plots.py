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
MAX_HIGHLIGHT = 20_000  # selected objects drawn one by one; beyond, an even sample


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


def highlight(ra: np.ndarray, dec: np.ndarray) -> hv.Points:
    """Selected objects drawn on top (an even sample beyond ``MAX_HIGHLIGHT``)."""
    step = max(1, -(-len(ra) // MAX_HIGHLIGHT))
    pts = hv.Points((ra[::step], dec[::step]), kdims=["ra", "dec"])
    return pts.opts(color=plots.ACCENT, size=4, line_color=None, alpha=0.9, tools=[])


def selection_outline(corners: list) -> hv.Path:
    """The box or lasso drawn on the sky."""
    return hv.Path([corners] if len(corners) else [], kdims=["ra", "dec"]).opts(
        color=plots.ACCENT, line_width=1.5, line_dash="dashed"
    )
