"""Uploaded cutouts: read FITS / PNG / NPY files and check them against a survey.

A query image must have the survey's bands (in order) and its cutout size; nothing is resampled,
because an embedding of a differently sized or banded image would silently mean something else.
Non-finite pixels (NaN, inf) are an error by default; ``nonfinite="fill"`` replaces them by 0,
which is what ingestion did to the survey's own images (``SurveyWriter``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from backend.latent.errors import LatentError
from backend.survey.meta import SurveyMeta

EmbedFn = Callable[[np.ndarray], np.ndarray]
"""An encoder: (n, C, H, W) float32 cutouts -> (n, D) embeddings."""

NONFINITE_POLICIES = ("error", "fill")
MAX_UPLOAD_PIXELS = 64 * 1024 * 1024  # refuse absurd uploads before allocating them


def validate_cutouts(images: np.ndarray, meta: SurveyMeta, nonfinite: str = "error") -> np.ndarray:
    """(n, C, H, W) float32 copy of ``images`` ((C, H, W) or (n, C, H, W)) fit for ``meta``."""
    if nonfinite not in NONFINITE_POLICIES:
        raise LatentError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    arr = np.asarray(images)
    if arr.size > MAX_UPLOAD_PIXELS:
        raise LatentError(f"image too large: {arr.size:,} pixels (limit {MAX_UPLOAD_PIXELS:,})")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise LatentError(f"image pixels must be real numbers, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    c, h, w = meta.image_shape
    bands = ", ".join(meta.bands)
    if arr.ndim != 4:
        raise LatentError(
            f"expected an image of shape (C, H, W) = ({c}, {h}, {w}) for survey {meta.name}, "
            f"got shape {np.asarray(images).shape}"
        )
    if arr.shape[1] != c:
        raise LatentError(
            f"image has {arr.shape[1]} band(s), survey {meta.name} expects {c} ({bands})"
        )
    if arr.shape[2:] != (h, w):
        raise LatentError(
            f"image is {arr.shape[2]}x{arr.shape[3]} pixels, survey {meta.name} expects {h}x{w}"
        )
    out = arr.astype(np.float32, copy=True)
    bad = ~np.isfinite(out)
    if bad.any():
        if nonfinite == "error":
            raise LatentError(
                f"image has {int(bad.sum())} NaN/infinite pixel(s); fix them or allow filling "
                "them with 0 (nonfinite='fill', CLI --fill-nonfinite)"
            )
        out[bad] = 0.0
    return out


def check_embeddings(vectors: np.ndarray, n: int, dim: int) -> np.ndarray:
    """The output of an :data:`EmbedFn` as (n, dim) float32, or a clear error."""
    out = np.asarray(vectors, dtype=np.float32)
    if out.shape != (n, dim):
        raise LatentError(f"the encoder returned shape {out.shape}, expected ({n}, {dim})")
    if not np.isfinite(out).all():
        raise LatentError("the encoder returned NaN or infinite values for this image")
    return out


def read_image_file(path: Path, meta: SurveyMeta) -> np.ndarray:
    """Pixels of a FITS (first image HDU, (C, H, W) or (H, W)), PNG/JPEG or .npy file.

    PNG/JPEG pixels are scaled to [0, 1] (as images ingested from PNG are) and are accepted
    only by surveys with as many bands as the picture has channels.
    """
    path = Path(path)
    if not path.is_file():
        raise LatentError(f"no such image file: {path}")
    suffix = path.suffix.lower()
    if suffix in {".fits", ".fit", ".fts"} or path.name.lower().endswith(".fits.gz"):
        data = _read_fits(path)
    elif suffix in {".png", ".jpg", ".jpeg"}:
        data = _read_picture(path, meta)
    elif suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise LatentError(f"{path}: not a plain numpy array ({exc})") from None
    else:
        raise LatentError(f"{path}: unsupported image type {suffix!r} (use FITS, PNG or .npy)")
    if data.ndim == 2:
        data = data[None]
    return data


def _read_fits(path: Path) -> np.ndarray:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdus:
            for hdu in hdus:
                if hdu.data is not None and getattr(hdu, "is_image", False) and hdu.data.ndim >= 2:
                    return np.asarray(hdu.data, dtype=np.float32)
    except OSError as exc:
        raise LatentError(f"{path}: not a readable FITS file ({exc})") from None
    raise LatentError(f"{path}: no image data in any HDU")


def _read_picture(path: Path, meta: SurveyMeta) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            mode = "L" if meta.image_shape[0] == 1 else "RGB"
            if meta.image_shape[0] not in (1, 3):
                raise LatentError(
                    f"{path}: a PNG/JPEG has no calibrated fluxes in {len(meta.bands)} bands; "
                    f"upload a FITS cutout with bands {', '.join(meta.bands)}"
                )
            pixels = np.asarray(img.convert(mode), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise LatentError(f"{path}: not a readable picture ({exc})") from None
    return pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
