"""Anomaly scorers on a cutout's pixels: what no real, PSF-blurred sky source can look like.

Pure numpy/scipy, a batch of cutouts (N, C, H, W) at a time; each returns one raw score per
cutout, higher = stranger. Noise is measured per cutout and band, robustly, on the high-pass
image ``p - m8`` (``m8``: the (upper) median of a pixel's 8 neighbours), so smooth light cancels and
the scores are in units of that noise.

- ``sharpness`` (cosmic rays, hot pixels, bad columns): every real source is blurred by the
  PSF, so a pixel rises above the median of its neighbours by at most a fraction ``q_psf`` of
  its own value (about 0.3 for a PSF of FWHM 3 px; 1 for a single-pixel event). The score is
  the largest ``(p - m8 - q_limit * p) / sigma`` over pixels and bands, ``q_limit`` halfway
  between the survey's ``q_psf`` and 1. ``q_psf`` is measured on the survey
  (:func:`psf_sharpness`: a high percentile of ``(p - m8) / p`` at bright local maxima, which
  are PSF-limited stars and compact cores), so no seeing needs to be declared.
- ``asymmetry`` (blends, mergers, bright stars, off-centre transients, lensed arcs): the
  rotational asymmetry of the CAS system (Conselice 2003) about the cutout's centre (cutouts
  are centred on their object), over all bands, ``(sum |s - s180| - B) / (2 sum max(p, 0))``
  on the image ``s`` smoothed to the PSF's scale (:func:`psf_sigma`: structure finer than
  the resolution, i.e. noise, does not count), with the noise's own asymmetry ``B`` (its
  expectation, ``2 sigma_s / sqrt(pi)`` per pixel) subtracted, so faint galaxies do not rank
  high for their noise alone.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PEAK_SIGMA = 50.0  # local maxima this far above the noise measure the PSF's sharpness
PSF_PERCENTILE = 90.0  # the sharpest real peaks (a few cosmic rays sit above it)
MIN_PEAKS = 20  # fewer bright peaks than this: the default below
DEFAULT_Q_PSF = 0.35  # a Gaussian PSF of FWHM ~3 px (most ground-based surveys' sampling)
SAMPLE = 2000  # cutouts read to measure q_psf
CACHE_ELEMENTS = 1 << 18  # pixels per block of the neighbour median (1 MB of float32)
HIGHPASS_NOISE = 1.09  # std of p - m8 over the pixel noise, for white noise


# Batcher's odd-even merge sort of 8 values: 19 compare-exchanges, elementwise over arrays
_SORT8 = (
    (0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (1, 2), (5, 6),
    (0, 4), (1, 5), (2, 6), (3, 7), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6),
)  # fmt: skip


def neighbours(x: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours of every pixel over the last two axes (edges repeated)."""
    pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(x, pad, mode="edge")
    h, w = x.shape[-2:]
    return [
        p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    ]


def neighbour_median(x: np.ndarray) -> np.ndarray:
    """The upper median (5th smallest) of each pixel's 8 neighbours: a 1-2 px wide track
    through a pixel covers at most 3 of them, so it stays the background's. Computed in
    cache-sized blocks along the first axis (6x faster than one pass over a large batch)."""
    if x.ndim > 2 and x.size > CACHE_ELEMENTS:
        step = max(1, CACHE_ELEMENTS // (x.size // len(x)))
        return np.concatenate([neighbour_median(x[i : i + step]) for i in range(0, len(x), step)])
    v = neighbours(x)
    for i, j in _SORT8:
        v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
    return v[4]


def neighbour_max(x: np.ndarray) -> np.ndarray:
    """The largest of each pixel's 8 neighbours."""
    return np.maximum.reduce(neighbours(x))


def robust_sigma(x: np.ndarray) -> np.ndarray:
    """Noise per image plane (..., 1, 1): 1.4826 x the median absolute deviation, or, where
    that is 0 (quantised images), 1.2533 x the mean absolute deviation; never 0."""
    flat = x.reshape(*x.shape[:-2], -1)
    centred = np.abs(flat - np.median(flat, axis=-1, keepdims=True))
    sigma = 1.4826 * np.median(centred, axis=-1)
    sigma = np.where(sigma > 0, sigma, 1.2533 * centred.mean(axis=-1))
    return np.maximum(sigma, 1e-12)[..., None, None]


def _highpass(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"cutouts must be (N, C, H, W), got shape {x.shape}")
    hp = x - neighbour_median(x)
    return x, hp, robust_sigma(hp)


def psf_sharpness(images: np.ndarray) -> float:
    """The survey's PSF sharpness ``q_psf``: the 90th percentile of ``(p - m8) / p`` at local
    maxima brighter than 50 noise sigma in ``images`` (a sample of the survey); 0.35 (a PSF of
    FWHM ~3 px) when fewer than 20 such peaks exist."""
    x, hp, sigma = _highpass(images)
    peaks = (x >= neighbour_max(x)) & (x > PEAK_SIGMA * sigma)
    if int(peaks.sum()) < MIN_PEAKS:
        return DEFAULT_Q_PSF
    ratio = hp[peaks] / x[peaks]
    return float(np.clip(np.percentile(ratio, PSF_PERCENTILE), 0.05, 0.95))


def sharpness_limit(q_psf: float) -> float:
    """Halfway between a PSF-limited source (``q_psf``) and a single-pixel event (1)."""
    return 0.5 * (1.0 + float(q_psf))


def sharpness(images: np.ndarray, q_limit: float) -> np.ndarray:
    """Per cutout: the largest ``(p - m8 - q_limit * p) / sigma`` over pixels and bands."""
    return pixel_scores(images, q_limit, 0.0)["sharpness"]


def asymmetry(images: np.ndarray, smooth: float = 0.0) -> np.ndarray:
    """Per cutout: the noise-corrected rotational asymmetry about the centre, all bands, after
    a Gaussian smoothing of ``smooth`` pixels (the PSF's sigma; 0: none)."""
    x, _, sigma = _highpass(images)
    return _asymmetry(x, sigma, smooth)


def psf_sigma(q_psf: float) -> float:
    """The Gaussian PSF's sigma (pixels) whose point source, centred on a pixel, rises
    ``q_psf`` above its ring (``q = 1 - exp(-1 / (2 sigma^2))``), within 0.5-4 px."""
    q = float(np.clip(q_psf, 1e-6, 1 - 1e-6))
    return float(np.clip(np.sqrt(-0.5 / np.log1p(-q)), 0.5, 4.0))


def smoothing_gain(sigma: float) -> float:
    """How much a Gaussian smoothing of ``sigma`` pixels scales white noise (exact, discrete)."""
    delta = np.zeros((33, 33))
    delta[16, 16] = 1.0
    return float(np.sqrt((ndimage.gaussian_filter(delta, sigma) ** 2).sum()))


def _asymmetry(x: np.ndarray, hp_sigma: np.ndarray, smooth: float) -> np.ndarray:
    s = ndimage.gaussian_filter(x, (0, 0, smooth, smooth)) if smooth > 0 else x
    residual = np.abs(s - s[..., ::-1, ::-1]).sum(axis=(1, 2, 3))
    h, w = x.shape[-2:]
    gain = smoothing_gain(smooth) if smooth > 0 else 1.0
    noise = (2.0 / np.sqrt(np.pi)) * gain * (hp_sigma / HIGHPASS_NOISE).sum(axis=(1, 2, 3)) * h * w
    light = np.maximum(x, 0.0).sum(axis=(1, 2, 3))
    return ((residual - noise) / np.maximum(2.0 * light, 1e-12)).astype(np.float32)


def pixel_scores(images: np.ndarray, q_limit: float, smooth: float) -> dict[str, np.ndarray]:
    """``{"sharpness", "asymmetry"}`` of a batch (sharpness limit ``q_limit``, asymmetry
    smoothed by ``smooth`` pixels), sharing one high-pass pass."""
    x, hp, sigma = _highpass(images)
    excess = (hp - q_limit * np.maximum(x, 0.0)) / sigma
    return {
        "sharpness": excess.reshape(len(x), -1).max(axis=1).astype(np.float32),
        "asymmetry": _asymmetry(x, sigma, smooth),
    }
