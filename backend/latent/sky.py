"""Sky positions: parse RA/Dec the way astronomers type them; nearest object via a KD-tree.

Positions are unit vectors on the sphere in a :class:`scipy.spatial.cKDTree`; a chord of length
``c`` is an angle ``2 arcsin(c / 2)``, so radius searches are exact and take microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import astropy.units as u
import numpy as np
import pandas as pd
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
