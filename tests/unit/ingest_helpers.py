"""Small input files for the ingestion tests: FITS (three layouts), pictures, Galaxy10 HDF5."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

SHARED_HSC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hsc_blends"


def blob(size: int, bands: int = 3, seed: int = 0, width: float = 3.0) -> np.ndarray:
    """(bands, size, size) float32 Gaussian galaxy with noise and band-dependent brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    profile = np.exp(-(xx**2 + yy**2) / (2 * width**2))
    scales = np.linspace(1.0, 2.0, bands)[:, None, None] * (1 + seed % 5)
    return (scales * profile * 10 + rng.normal(0, 0.1, (bands, size, size))).astype(np.float32)


def wcs_header(ra: float, dec: float, shape: tuple[int, int], scale: float = 0.2) -> fits.Header:
    """A TAN WCS whose reference pixel is the cutout centre (so the centre is at ra, dec)."""
    h, w = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(w + 1) / 2, (h + 1) / 2]
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    return wcs.to_header()


def write_cube(
    path: Path,
    data: np.ndarray,
    bands: Sequence[str] | None = None,
    ra: float | None = None,
    dec: float | None = None,
    band_keys: str = "BANDS",
    **cards: object,
) -> Path:
    """A 3-D cube (C, H, W) in the primary HDU; band names as ``BANDS`` or ``FILTERn`` keys."""
    header = wcs_header(ra, dec, data.shape[1:]) if ra is not None else fits.Header()
    if bands is not None and band_keys == "BANDS":
        header["BANDS"] = ",".join(bands)
    elif bands is not None:
        for k, b in enumerate(bands, 1):
            header[f"FILTER{k}"] = b
    for key, value in cards.items():
        header[key] = value
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


def write_extensions(
    path: Path,
    data: np.ndarray,
    bands: Sequence[str],
    ra: float | None = None,
    dec: float | None = None,
    with_error_hdu: bool = True,
) -> Path:
    """An empty primary HDU, then one image extension per band (FILTER and EXTNAME keys),
    plus an ancillary ERR extension that is not a band."""
    hdus: list = [fits.PrimaryHDU(header=fits.Header({"OBJECT": "mef-galaxy"}))]
    for plane, band in zip(data, bands, strict=True):
        header = wcs_header(ra, dec, plane.shape) if ra is not None else fits.Header()
        header["FILTER"] = band
        header["EXTNAME"] = f"IMG_{band}"
        hdus.append(fits.ImageHDU(plane, header=header))
    if with_error_hdu:
        hdus.append(fits.ImageHDU(np.ones_like(data[0]), name="ERR"))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_image(path: Path, plane: np.ndarray, **cards: object) -> Path:
    """A single 2-D image with arbitrary header cards (e.g. FILTER, RA, DEC)."""
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    fits.PrimaryHDU(plane, header=header).writeto(path, overwrite=True)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def picture(size: int, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 colour picture of a galaxy."""
    rgb = blob(size, 3, seed, width=size / 8).transpose(1, 2, 0)
    return np.clip(rgb / rgb.max() * 255, 0, 255).astype(np.uint8)


def write_pictures(
    folder: Path, names: Sequence[str], size: int = 32, fmt: str = "PNG"
) -> dict[str, np.ndarray]:
    """One picture per name (``<name>.png`` or ``.jpg``); returns the arrays by name."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".png" if fmt == "PNG" else ".jpg"
    out = {}
    for k, name in enumerate(names):
        rgb = picture(size, seed=k)
        Image.fromarray(rgb).save(folder / f"{name}{suffix}", format=fmt)
        out[name] = rgb
    return out


def write_galaxy10(path: Path, n: int = 10, size: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """A Galaxy10 DECaLS-layout HDF5 file (images uint8 (n, size, size, 3), ans, ra, dec,
    redshift, pxscale), HDF5-chunked one picture per chunk like the real file."""
    rng = np.random.default_rng(seed)
    data = {
        "images": np.stack([picture(size, seed=k) for k in range(n)]),
        "ans": (np.arange(n) % 10).astype(np.uint8),
        "ra": rng.uniform(150.0, 151.0, n),
        "dec": rng.uniform(2.0, 3.0, n),
        "redshift": rng.uniform(0.01, 0.2, n),
        "pxscale": np.full(n, 0.262),
    }
    with h5py.File(path, "w") as h5:
        h5.create_dataset(
            "images", data=data["images"], chunks=(1, size, size, 3), compression="gzip"
        )
        for key in ("ans", "ra", "dec", "redshift", "pxscale"):
            h5.create_dataset(key, data=data[key])
    return data
