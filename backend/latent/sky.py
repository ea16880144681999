"""Sky positions: parse RA/Dec the way astronomers type them; nearest object via a KD-tree.

Positions are unit vectors on the sphere in a :class:`scipy.spatial.cKDTree`; a chord of length
``c`` is an angle ``2 arcsin(c / 2)``, so radius searches are exact and take microseconds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from astropy.coordinates import Angle, SkyCoord
from scipy.spatial import cKDTree

from backend.latent.errors import LatentError

ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_position(position: str | Sequence[float | str] | SkyCoord) -> SkyCoord:
    """A sky position from ``"150.1 2.2"`` (degrees), ``"10:00:24 +02:12:00"``,
    ``"10h00m24s +2d12m00s"``, ``"10 00 24 +02 12 00"`` (RA in hours), ``(150.1, 2.2)`` or a
    SkyCoord. A bare number is degrees, a sexagesimal RA is hours unless it says ``d``.
    Raises :class:`LatentError` for anything else or RA outside [0, 360), Dec outside [-90, 90].
    """
    if isinstance(position, SkyCoord):
        return position.icrs
    ra_text, dec_text = _split(position)
    try:
        ra_unit = u.deg if _FLOAT_RE.match(ra_text) else u.hourangle
        ra = Angle(ra_text, unit=ra_unit).deg
        dec = Angle(dec_text, unit=u.deg).deg
    except (ValueError, u.UnitsError) as exc:
        raise LatentError(f"cannot read sky position {position!r}: {exc}") from None
    return sky_coord(float(ra), float(dec))


def sky_coord(ra_deg: float, dec_deg: float) -> SkyCoord:
    """ICRS SkyCoord from degrees, after checking the ranges."""
    if not np.isfinite(ra_deg) or not 0.0 <= ra_deg < 360.0:
        raise LatentError(f"RA {ra_deg:g} deg is outside [0, 360)")
    if not np.isfinite(dec_deg) or not -90.0 <= dec_deg <= 90.0:
        raise LatentError(f"Dec {dec_deg:g} deg is outside [-90, 90]")
    return SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")


def _split(position: str | Sequence[float | str]) -> tuple[str, str]:
    if isinstance(position, str):
        text = position.strip()
        parts = [p.strip() for p in text.split(",")] if "," in text else text.split()
        if len(parts) in (4, 6):  # "hh mm ss dd mm ss" or "hh mm dd mm"
            half = len(parts) // 2
            parts = [" ".join(parts[:half]), " ".join(parts[half:])]
    else:
        parts = [str(p) for p in position]
    if len(parts) != 2 or not all(parts):
        raise LatentError(
            f"cannot read sky position {position!r}: give RA and Dec, e.g. '150.1 2.2' "
            "(degrees) or '10:00:24 +02:12:00' (hours, degrees)"
        )
    return parts[0], parts[1]


def unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """(n, 3) Cartesian unit vectors of RA/Dec in degrees."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def chord(radius_arcsec: float) -> float:
    return float(2.0 * np.sin(min(radius_arcsec / ARCSEC_PER_RAD, np.pi) / 2.0))


def arcsec_from_chord(c: np.ndarray | float) -> np.ndarray:
    return 2.0 * np.arcsin(np.clip(np.asarray(c) / 2.0, 0.0, 1.0)) * ARCSEC_PER_RAD


class SkyIndex:
    """KD-tree over the catalog's RA/Dec (degrees); rows without a position are left out."""

    def __init__(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> None:
        ra = np.asarray(ra_deg, dtype=np.float64)
        dec = np.asarray(dec_deg, dtype=np.float64)
        self.rows = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
        self.tree = cKDTree(unit_vectors(ra[self.rows], dec[self.rows]))

    @classmethod
    def from_catalog(cls, catalog: pd.DataFrame, name: str = "survey") -> SkyIndex:
        if not {"ra", "dec"} <= set(catalog.columns):
            raise LatentError(f"{name} has no sky positions (no ra/dec columns in its catalog)")
        return cls(catalog["ra"].to_numpy(float), catalog["dec"].to_numpy(float))

    def nearest(self, position: SkyCoord, radius_arcsec: float) -> tuple[int, float] | None:
        """(row, separation in arcsec) of the nearest object within the radius, else None."""
        if not radius_arcsec > 0:
            raise LatentError(f"search radius must be positive, got {radius_arcsec} arcsec")
        xyz = unit_vectors(position.ra.deg, position.dec.deg)[0]
        dist, i = self.tree.query(xyz, k=1, distance_upper_bound=chord(radius_arcsec))
        if not np.isfinite(dist):
            return None
        return int(self.rows[i]), float(arcsec_from_chord(dist))

    def nearest_any(self, position: SkyCoord) -> tuple[int, float] | None:
        """(row, separation in arcsec) of the nearest object at any distance."""
        if not len(self.rows):
            return None
        xyz = unit_vectors(position.ra.deg, position.dec.deg)[0]
        dist, i = self.tree.query(xyz, k=1)
        return int(self.rows[i]), float(arcsec_from_chord(dist))


class PagedSkyIndex:
    """:class:`SkyIndex`'s look-ups over a catalog file read row group by row group (a big
    survey's: no tree, no whole column): a cone search reads only the row groups whose RA/Dec
    statistics may hold a point within the radius, and of each only the rows in the cone's Dec
    band are measured; memory is one row group. ``reads`` counts the row groups read."""

    def __init__(self, path: Path, name: str = "survey") -> None:
        self.path = Path(path)
        self.file = pq.ParquetFile(self.path)
        names = self.file.schema_arrow.names
        if not {"ra", "dec"} <= set(names):
            raise LatentError(f"{name} has no sky positions (no ra/dec columns in its catalog)")
        meta = self.file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        at = [names.index("ra"), names.index("dec")]
        self.boxes = [_group_box(meta.row_group(g), at) for g in range(meta.num_row_groups)]
        self.reads = 0
        self._lock = threading.Lock()  # a ParquetFile is not thread-safe

    def _groups_near(self, ra: float, dec: float, radius_deg: float) -> list[int]:
        """Row groups whose RA/Dec box (from their statistics) may reach the cone."""
        near = []
        for g, box in enumerate(self.boxes):
            if box is None:
                near.append(g)
                continue
            ra0, ra1, dec0, dec1 = box
            if dec < dec0 - radius_deg or dec > dec1 + radius_deg:
                continue
            if abs(dec) + radius_deg >= 89.0 or ra1 - ra0 >= 360.0:
                near.append(g)
                continue
            reach = radius_deg / np.cos(np.radians(abs(dec) + radius_deg))
            gap = min((ra0 - ra) % 360.0, (ra - ra1) % 360.0)  # 0 <= gap when outside
            inside = (ra - ra0) % 360.0 <= (ra1 - ra0)
            if inside or gap <= reach:
                near.append(g)
        return near

    def _scan(self, groups: list[int], position: SkyCoord, bound: float) -> tuple[int, float]:
        """(row, chord) of the nearest position in ``groups`` closer than chord ``bound``."""
        q = unit_vectors(position.ra.deg, position.dec.deg)[0]
        band = np.degrees(2 * np.arcsin(min(bound / 2, 1.0))) if np.isfinite(bound) else 180.0
        best_row, best = -1, bound
        for g in groups:
            with self._lock:
                part = self.file.read_row_group(g, columns=["ra", "dec"])
                self.reads += 1
            ra = np.asarray(part.column("ra").to_numpy(zero_copy_only=False), np.float64)
            dec = np.asarray(part.column("dec").to_numpy(zero_copy_only=False), np.float64)
            ok = np.flatnonzero(np.isfinite(ra) & (np.abs(dec - position.dec.deg) <= band))
            if not len(ok):
                continue
            dist = np.linalg.norm(unit_vectors(ra[ok], dec[ok]) - q, axis=1)
            i = int(np.argmin(dist))
            if dist[i] < best:
                best_row, best = int(self.starts[g] + ok[i]), float(dist[i])
        return best_row, best

    def nearest(self, position: SkyCoord, radius_arcsec: float) -> tuple[int, float] | None:
        """(row, separation in arcsec) of the nearest object within the radius, else None."""
        if not radius_arcsec > 0:
            raise LatentError(f"search radius must be positive, got {radius_arcsec} arcsec")
        bound = chord(radius_arcsec)
        groups = self._groups_near(position.ra.deg, position.dec.deg, radius_arcsec / 3600.0)
        row, dist = self._scan(groups, position, bound * (1 + 1e-12))
        if row < 0 or dist > bound:
            return None
        return row, float(arcsec_from_chord(dist))

    def nearest_any(self, position: SkyCoord) -> tuple[int, float] | None:
        """(row, separation in arcsec) of the nearest object at any distance (every group)."""
        row, dist = self._scan(list(range(len(self.boxes))), position, np.inf)
        return None if row < 0 else (row, float(arcsec_from_chord(dist)))

    def groups_meeting(
        self, ra_range: tuple[float, float], dec_range: tuple[float, float]
    ) -> np.ndarray:
        """Row groups whose RA/Dec statistics meet the RA/Dec ranges (RA on the circle; a group
        without statistics always): what :meth:`rows_in` would read."""
        return np.array(
            [g for g, box in enumerate(self.boxes)
             if box is None or _box_meets(box, ra_range, dec_range)], dtype=np.int64,
        )  # fmt: skip

    def rows_in(
        self,
        ra_range: tuple[float, float],
        dec_range: tuple[float, float],
        inside: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, RA, Dec) of the objects for which ``inside(ra, dec)`` holds (RA as stored,
        in [0, 360)), reading only the row groups whose RA/Dec statistics meet the shape's
        bounding box (``ra_range`` may run past 0 or 360: it is taken on the circle)."""
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for g, box in enumerate(self.boxes):
            if box is not None and not _box_meets(box, ra_range, dec_range):
                continue
            with self._lock:
                part = self.file.read_row_group(g, columns=["ra", "dec"])
                self.reads += 1
            ra = np.asarray(part.column("ra").to_numpy(zero_copy_only=False), np.float64)
            dec = np.asarray(part.column("dec").to_numpy(zero_copy_only=False), np.float64)
            ok = np.isfinite(ra) & np.isfinite(dec)
            ok[ok] = inside(ra[ok], dec[ok])
            at = np.flatnonzero(ok)
            found.append((self.starts[g] + at, ra[at], dec[at]))
        if not found:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        rows, ra, dec = (np.concatenate(parts) for parts in zip(*found, strict=True))
        return rows.astype(np.int64), ra, dec


def _box_meets(
    box: tuple[float, float, float, float],
    ra_range: tuple[float, float],
    dec_range: tuple[float, float],
) -> bool:
    """A row group's (RA min, RA max, Dec min, Dec max) meets the RA/Dec ranges (RA on the
    circle)."""
    ra0, ra1, dec0, dec1 = box
    if dec1 < dec_range[0] or dec0 > dec_range[1]:
        return False
    width = ra_range[1] - ra_range[0]
    if width >= 360.0 or ra1 - ra0 >= 360.0:
        return True
    start = ra_range[0] % 360.0
    return (ra0 - start) % 360.0 <= width or (start - ra0) % 360.0 <= ra1 - ra0


def _group_box(group: Any, at: list[int]) -> tuple[float, float, float, float] | None:
    """(RA min, RA max, Dec min, Dec max) of a row group from its statistics, else None."""
    box = []
    for i in at:
        stats = group.column(i).statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            return None
        box += [float(stats.min), float(stats.max)]
    if not np.isfinite(box).all():
        return None
    return box[0], box[1], box[2], box[3]


def dedupe_on_sky(ra_deg: np.ndarray, dec_deg: np.ndarray, radius_arcsec: float) -> np.ndarray:
    """Mask keeping each row unless an earlier kept row lies within ``radius_arcsec``.

    Rows are in rank order; rows without a position are always kept.
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    keep = np.ones(len(ra), dtype=bool)
    ok = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    if radius_arcsec <= 0 or len(ok) < 2:
        return keep
    pairs = cKDTree(unit_vectors(ra[ok], dec[ok])).query_pairs(
        chord(radius_arcsec), output_type="ndarray"
    )
    if not len(pairs):
        return keep
    pairs = ok[np.sort(pairs, axis=1)]  # (earlier, later) in rank order
    pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
    for first, later in pairs:  # only close pairs: few, and the order matters
        if keep[first]:
            keep[later] = False
    return keep
