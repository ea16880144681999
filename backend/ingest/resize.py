"""Bringing cutouts to a common (H, W): centre crop/pad, or resampling that keeps NaN masks.

Resampling preserves surface brightness (pixel values), not total flux: a galaxy's pixels keep
their units, and the pixel scale of the survey changes by the zoom factor instead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from skimage.transform import resize as sk_resize

ResizeMode = Literal["crop", "resample"]
RESIZE_MODES: tuple[str, ...] = ("crop", "resample")


def crop_or_pad(image: np.ndarray, shape: tuple[int, int], fill: float = 0.0) -> np.ndarray:
    """Centre-crop or pad the last two axes of ``image`` to ``shape`` (pad value ``fill``)."""
    h, w = image.shape[-2:]
    th, tw = shape
    if (h, w) == (th, tw):
        return image
    out = np.full((*image.shape[:-2], th, tw), fill, dtype=image.dtype)
    # Source and destination windows, centred (odd differences put the extra pixel low).
    sy, dy = max((h - th) // 2, 0), max((th - h) // 2, 0)
    sx, dx = max((w - tw) // 2, 0), max((tw - w) // 2, 0)
    ch, cw = min(h, th), min(w, tw)
    out[..., dy : dy + ch, dx : dx + cw] = image[..., sy : sy + ch, sx : sx + cw]
    return out


def resample(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample the last two axes of ``images`` to ``shape`` (any leading axes).

    Integer downsampling factors use an exact block mean; other factors use bilinear
    interpolation with Gaussian anti-aliasing when shrinking. Non-finite pixels are filled
    before resampling and put back (as NaN) where at least half of an output pixel came from
    them, so the survey writer still counts them.
    """
    h, w = images.shape[-2:]
    th, tw = shape
    if (h, w) == (th, tw):
        return images
    data = np.asarray(images, dtype=np.float32)
    bad = ~np.isfinite(data)
    if bad.any():
        data = np.where(bad, 0.0, data).astype(np.float32)
        out = _resample_finite(data, shape)
        out[_resample_finite(bad.astype(np.float32), shape) >= 0.5] = np.nan
        return out
    return _resample_finite(data, shape)


def _resample_finite(data: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = data.shape[-2:]
    th, tw = shape
    if h % th == 0 and w % tw == 0:
        fh, fw = h // th, w // tw
        blocks = data.reshape(*data.shape[:-2], th, fh, tw, fw)
        return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)
    out = sk_resize(
        data,
        (*data.shape[:-2], th, tw),
        order=1,
        mode="reflect",
        anti_aliasing=th < h or tw < w,
        preserve_range=True,
    )
    return out.astype(np.float32)


def fit_to_shape(image: np.ndarray, shape: tuple[int, int], mode: ResizeMode) -> np.ndarray:
    """Bring ``image`` (..., H, W) to ``shape`` by ``mode`` ("crop" or "resample")."""
    if mode == "crop":
        return crop_or_pad(image, shape)
    if mode == "resample":
        return resample(image, shape)
    raise ValueError(f"unknown resize mode {mode!r} (use one of {', '.join(RESIZE_MODES)})")
