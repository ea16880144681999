"""Reading one FITS cutout: layout, band names, sky position at the centre, pixels.

Three layouts are understood:

- ``image``: one 2-D image (a single band);
- ``cube``: a 3-D image HDU, bands x H x W (degenerate leading axes are dropped);
- ``extensions``: one 2-D image HDU per band, all of the same shape (HDUs whose EXTNAME says
  they are ancillary - ERR, WHT, DQ, VAR, MASK, ... - are not bands).

:func:`probe` reads headers only; :func:`read_pixels` then reads the data of the band HDUs.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from backend.errors import UserError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")
MAX_BANDS = 64  # more planes than this is a spectral cube, not a multi-band cutout
MAX_PIXELS = 64_000_000  # C*H*W above this is a mosaic, not a cutout (cut it into stamps)
ANCILLARY_EXTNAMES = {
    "ERR", "ERROR", "SIGMA", "RMS", "WHT", "WEIGHT", "IVAR", "INVVAR", "VAR", "VARIANCE",
    "DQ", "MASK", "FLAGS", "BADPIX", "PSF", "EXP", "EXPTIME", "CTX", "CON", "HDRTAB",
}  # fmt: skip
_GENERIC_EXTNAMES = {"PRIMARY", "SCI", "IMAGE", "DATA", "FLUX", "COMPRESSED_IMAGE"}
_BAND_LIST_KEYS = ("BANDS", "FILTERS")
_BAND_KEYS = ("FILTER", "BAND", "FILTNAM1", "FILTER1", "FILTNAME")
_RADEC_KEYS = (("RA", "DEC"), ("RA_OBJ", "DEC_OBJ"), ("OBJRA", "OBJDEC"), ("RA_TARG", "DEC_TARG"))


class FitsReadError(UserError, ValueError):
    """This file cannot be used as a cutout; the message says why."""


@dataclass
class FitsCutout:
    """What the headers say about one FITS cutout (pixels are read separately)."""

    path: Path
    layout: str  # "image" | "cube" | "extensions"
    hdus: list[int]  # HDU indices holding the bands
    n_bands: int
    height: int
    width: int
    bands: list[str] | None  # from headers, None when they do not say
    ra: float = np.nan
    dec: float = np.nan
    radec_source: str = ""  # "wcs" | "header" | ""
    pixel_scale: float | None = None  # arcsec/pixel from the WCS
    header_values: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width


def probe(path: Path, header_keys: tuple[str, ...] = ("OBJECT",)) -> FitsCutout:
    """Describe ``path`` from its headers; raises :class:`FitsReadError` with the reason."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                cutout = _describe(path, hdul, header_keys)
        except FitsReadError:
            raise
        except Exception as exc:  # astropy raises OSError, ValueError, KeyError, ...
            raise FitsReadError(f"not a readable FITS file ({_short(exc)})") from exc
    for w in caught:
        if "may have been truncated" in str(w.message).lower():
            raise FitsReadError(f"truncated file ({_short(w.message)})")
    return cutout


def read_pixels(cutout: FitsCutout) -> np.ndarray:
    """The (C, H, W) float32 pixels of ``cutout`` (NaN/inf kept; the writer counts them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            with fits.open(cutout.path, memmap=False) as hdul:
                planes = [_squeezed(hdul[i].data) for i in cutout.hdus]
        except Exception as exc:
            raise FitsReadError(f"cannot read the pixels ({_short(exc)})") from exc
    if any(p is None for p in planes):
        raise FitsReadError("an image HDU has no data")
    data = planes[0] if cutout.layout == "cube" else np.stack(planes)
    data = np.asarray(data, dtype=np.float32)
    if data.shape != (cutout.n_bands, cutout.height, cutout.width):
        raise FitsReadError(
            f"data shape {data.shape} does not match the header "
            f"({cutout.n_bands}, {cutout.height}, {cutout.width})"
        )
    return data


# -- layout ------------------------------------------------------------------------------------
def _describe(path: Path, hdul: fits.HDUList, header_keys: tuple[str, ...]) -> FitsCutout:
    images = [(i, h) for i, h in enumerate(hdul) if h.is_image and _shape(h)]
    if not images:
        raise FitsReadError("no image data in any HDU (only headers or tables)")
    first_index, first = images[0]
    shape = _shape(first)
    if len(shape) == 3:
        layout, hdus, (n, height, width) = "cube", [first_index], shape
        bands = _cube_bands(first.header, n)
        band_header = first.header
    elif len(shape) == 2:
        same = [
            (i, h)
            for i, h in images
            if _shape(h) == shape
            and str(h.header.get("EXTNAME", "")).strip().upper() not in ANCILLARY_EXTNAMES
        ] or [images[0]]
        layout = "image" if len(same) == 1 else "extensions"
        hdus = [i for i, _ in same]
        n, (height, width) = len(same), shape
        bands = _hdu_bands([h.header for _, h in same], primary=hdul[0].header)
        band_header = same[0][1].header
    else:
        raise FitsReadError(
            f"image of shape {shape} in HDU {first_index}: expected 2-D (H, W) or 3-D (bands, H, W)"
        )
    if n > MAX_BANDS:
        raise FitsReadError(f"{n} planes: more than {MAX_BANDS} bands (a spectral cube?)")
    if min(height, width) < 2:
        raise FitsReadError(f"degenerate image of {height}x{width} pixels")
    if n * height * width > MAX_PIXELS:
        raise FitsReadError(
            f"{n}x{height}x{width} pixels is a mosaic, not a cutout "
            f"(limit {MAX_PIXELS:,}); cut it into stamps first"
        )
    cutout = FitsCutout(path, layout, hdus, n, height, width, bands)
    primary = hdul[0].header
    _locate(cutout, [band_header, primary] if band_header is not primary else [primary])
    for key in header_keys:
        for header in (band_header, primary):
            if key in header and header[key] not in (None, ""):
                cutout.header_values[key] = _plain(header[key])
                break
    return cutout


def _shape(hdu: Any) -> tuple[int, ...]:
    """The data shape from the header, without degenerate leading axes; () when empty."""
    try:
        shape = tuple(int(s) for s in hdu.shape)
    except Exception:
        return ()
    if not shape or 0 in shape:
        return ()
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _squeezed(data: np.ndarray | None) -> np.ndarray | None:
    if data is None:
        return None
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    return data


# -- band names --------------------------------------------------------------------------------
def _split(text: str) -> list[str]:
    return [t for t in re.split(r"[,\s;]+", str(text).strip()) if t]


def _cube_bands(header: fits.Header, n: int) -> list[str] | None:
    for key in _BAND_LIST_KEYS:
        if key in header:
            names = _split(header[key])
            if len(names) == n:
                return _unique_or_none(names)
    for stem in ("FILTER", "FILT", "BAND"):
        names = [header.get(f"{stem}{k}") for k in range(1, n + 1)]
        if all(v not in (None, "") for v in names):
            return _unique_or_none([str(v).strip() for v in names])
    for key in ("FILTER", "BAND"):
        if key in header and len(_split(header[key])) == n:
            return _unique_or_none(_split(header[key]))
    return None


def _hdu_bands(headers: list[fits.Header], primary: fits.Header) -> list[str] | None:
    """One name per band HDU: its FILTER/BAND keys, else a telling EXTNAME; for a single
    image also the primary header's keys; for several, the primary's FILTERn list."""
    names = [_band_key(h) for h in headers]
    if len(headers) == 1 and names[0] is None:
        names = [_band_key(primary)]
    if any(n is None for n in names):
        extnames = [str(h.get("EXTNAME", "")).strip() for h in headers]
        names = [
            n or (e if e and e.upper() not in _GENERIC_EXTNAMES else None)
            for n, e in zip(names, extnames, strict=True)
        ]
    if any(n is None for n in names):
        return _cube_bands(primary, len(headers)) if len(headers) > 1 else None
    return _unique_or_none(names)


def _band_key(header: fits.Header) -> str | None:
    for key in _BAND_KEYS:
        value = str(header.get(key, "")).strip()
        if value:
            return value
    for key in _BAND_LIST_KEYS:
        names = _split(header.get(key, ""))
        if len(names) == 1:
            return names[0]
    return None


def _unique_or_none(names: list[str]) -> list[str] | None:
    return names if len(set(names)) == len(names) and all(names) else None


# -- position ----------------------------------------------------------------------------------
def _locate(cutout: FitsCutout, headers: list[fits.Header]) -> None:
    """RA/Dec (deg) at the cutout centre from the celestial WCS, else from RA/DEC keys."""
    for header in headers:
        position = _wcs_centre(header, cutout.width, cutout.height)
        if position is not None:
            cutout.ra, cutout.dec, cutout.pixel_scale = position
            cutout.radec_source = "wcs"
            return
    for header in headers:
        for ra_key, dec_key in _RADEC_KEYS:
            if ra_key in header and dec_key in header:
                ra, dec = _angle(header[ra_key], hours=True), _angle(header[dec_key], False)
                if np.isfinite(ra) and np.isfinite(dec) and abs(dec) <= 90:
                    cutout.ra, cutout.dec, cutout.radec_source = ra % 360.0, dec, "header"
                    return


def _wcs_centre(header: fits.Header, width: int, height: int) -> tuple[float, float, float] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", AstropyWarning)
            if not any(str(k).startswith("CTYPE") for k in header):
                return None  # no WCS at all: skip the (slow) WCS parser
            wcs = WCS(header)
            if not wcs.has_celestial:
                return None
            sky = wcs if wcs.naxis == 2 else wcs.celestial
            world = sky.pixel_to_world_values((width - 1) / 2.0, (height - 1) / 2.0)
            ra, dec = world[sky.wcs.lng], world[sky.wcs.lat]  # axes may be (Dec, RA)
            scale = float(np.mean(proj_plane_pixel_scales(sky)) * 3600.0)
    except Exception:  # malformed WCS keywords: fall back to RA/DEC keys
        return None
    ra, dec = float(ra), float(dec)
    if not (np.isfinite(ra) and np.isfinite(dec)) or abs(dec) > 90:
        return None
    return ra % 360.0, dec, scale if np.isfinite(scale) and scale > 0 else None


def _angle(value: Any, hours: bool) -> float:
    """Degrees from a header value: a number (degrees) or sexagesimal text."""
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(Angle(text, unit=u.hourangle if hours else u.deg).degree)
    except Exception:
        return np.nan


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def _short(exc: object, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
