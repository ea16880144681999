"""Every object of a survey on the sky as HEALPix counts, written once with the catalog (issue 12).

The survey writer stores, beside the catalog, the number of objects in each non-empty NESTED
HEALPix pixel of order :data:`ORDER` (about 0.86 arcmin; ``sky_counts.npy``: (2, K) int64, the
sorted pixel numbers and their counts). The Sky view of a big survey draws every object from it
(counts at any coarser order are sums over runs of the sorted pixels) instead of reading the
catalog's coordinates; cdshealpix is the HEALPix library of the app's density layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import cdshealpix
import numpy as np
from astropy.coordinates import Latitude, Longitude

from backend.survey.beside import load_current_beside

SKY_COUNTS_FILE = "sky_counts.npy"
ORDER = 12


@dataclass(frozen=True)
class SkyCounts:
    """Objects per non-empty NESTED HEALPix pixel at ``order`` (pixels sorted)."""

    pixels: np.ndarray
    counts: np.ndarray
    order: int = ORDER

    @property
    def total(self) -> int:
        return int(np.sum(self.counts, dtype=np.int64))

    def at_order(self, order: int) -> tuple[np.ndarray, np.ndarray]:
        """(pixels, counts) at a coarser (or the same) ``order``: sums over the children."""
        if order >= self.order:
            return np.asarray(self.pixels), np.asarray(self.counts)
        parent = np.asarray(self.pixels) >> (2 * (self.order - order))
        if not len(parent):
            return parent, np.asarray(self.counts)
        starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
        return parent[starts], np.add.reduceat(np.asarray(self.counts), starts)

    def order_within(self, limit: int) -> int:
        """The deepest order (at most :attr:`order`) with at most ``limit`` non-empty pixels:
        what a view draws, so that its cost is bounded whatever the survey's size."""
        for order in range(self.order, -1, -1):
            if 12 * 4**order <= limit or len(self.at_order(order)[0]) <= limit:
                return order
        return 0


def centres_of(pixels: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) in degrees of NESTED HEALPix pixels' centres at ``order`` (RA in [0, 360))."""
    lon, lat = cdshealpix.healpix_to_lonlat(np.asarray(pixels, np.uint64), order)
    return np.asarray(lon.to_value(u.deg), np.float64), np.asarray(lat.to_value(u.deg))


def count_pixels(ra: np.ndarray, dec: np.ndarray, order: int = ORDER) -> SkyCounts:
    """The HEALPix counts of the finite positions (degrees; |Dec| <= 90)."""
    ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if not ok.any():
        return SkyCounts(np.zeros(0, np.int64), np.zeros(0, np.int64), order)
    lon = Longitude(np.mod(ra[ok], 360.0), unit=u.deg)
    pix = cdshealpix.lonlat_to_healpix(lon, Latitude(dec[ok], unit=u.deg), order)
    pixels, counts = np.unique(pix.astype(np.int64), return_counts=True)
    return SkyCounts(pixels, counts.astype(np.int64), order)


def merge_counts(parts: list[SkyCounts]) -> SkyCounts:
    """The counts of several batches of objects (same order) as one."""
    pixels = np.concatenate([np.asarray(p.pixels, np.int64) for p in parts])
    counts = np.concatenate([np.asarray(p.counts, np.int64) for p in parts])
    order = parts[0].order if parts else ORDER
    if not len(pixels):
        return SkyCounts(pixels, counts, order)
    sort = np.argsort(pixels, kind="stable")
    pixels, counts = pixels[sort], counts[sort]
    starts = np.flatnonzero(np.r_[True, pixels[1:] != pixels[:-1]])
    return SkyCounts(pixels[starts], np.add.reduceat(counts, starts), order)


def save_sky_counts(folder: Path, found: SkyCounts) -> Path:
    """Store ``found`` in ``folder`` (the writer's staging folder)."""
    path = Path(folder) / SKY_COUNTS_FILE
    np.save(path, np.stack([np.asarray(found.pixels), np.asarray(found.counts)]))
    return path


def write_sky_counts(folder: Path, ra: np.ndarray, dec: np.ndarray) -> Path:
    """Store the counts of the catalog's positions in ``folder`` (the writer's staging folder)."""
    return save_sky_counts(folder, count_pixels(ra, dec))


def read_sky_counts(catalog: Path, n: int) -> SkyCounts | None:
    """The stored counts beside ``catalog`` (memory-mapped); None when absent, older than the
    catalog, malformed or counting more than its ``n`` objects."""
    table = load_current_beside(catalog, SKY_COUNTS_FILE)
    if table is None:
        return None
    if table.ndim != 2 or table.shape[0] != 2 or table.dtype != np.int64:
        return None
    found = SkyCounts(table[0], table[1])
    return found if 0 <= found.total <= n else None
