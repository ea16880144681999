"""Pixel-level detector effects: noise, saturation with charge bleeding, tracks, bad pixels.

All functions edit one band image (H, W) or a stack (C, H, W) in place and keep it finite.
Coordinates are pixels with (0, 0) the centre of the first pixel; x is the column.
"""

from __future__ import annotations

import numpy as np

from backend.simulate.config import SurveyConfig


def add_noise(image: np.ndarray, cfg: SurveyConfig, rng: np.random.Generator) -> None:
    """Gaussian sky noise per band plus the source's Poisson noise (Gaussian approximation)."""
    sky = np.asarray(cfg.sky_sigma, dtype=np.float64)[:, None, None]
    sigma = np.sqrt(sky**2 + np.maximum(image, 0.0) / cfg.gain)
    image += sigma * rng.standard_normal(image.shape)


def saturate(image: np.ndarray, level: float) -> None:
    """Clip pixels at ``level``; the excess charge bleeds up and down the column."""
    for band in image:
        over = band > level
        if not over.any():
            continue
        for col in np.flatnonzero(over.any(axis=0)):
            rows = np.flatnonzero(over[:, col])
            excess = float((band[rows, col] - level).sum())
            extra = int(min(excess / level, band.shape[0]))
            lo = max(rows.min() - extra // 2, 0)
            hi = min(rows.max() + 1 + extra - extra // 2, band.shape[0])
            band[lo:hi, col] = level


def line(band: np.ndarray, x0: float, y0: float, angle: float, peak: float, sigma: float) -> None:
    """Add an infinite straight line through (x0, y0) with a Gaussian cross-section."""
    h, w = band.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dist = (xx - x0) * np.sin(angle) - (yy - y0) * np.cos(angle)
    band += peak * np.exp(-0.5 * (dist / sigma) ** 2)


def deposit_track(band: np.ndarray, x: np.ndarray, y: np.ndarray, energy: np.ndarray) -> None:
    """Deposit charge at sub-pixel points with bilinear weights (sharp, not PSF-blurred)."""
    h, w = band.shape
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        np.add.at(band, (yi[ok], xi[ok]), (energy * wgt)[ok])


def cosmic_ray(band: np.ndarray, rng: np.random.Generator, amplitude: float) -> None:
    """A short, sharp, slightly curved track (muon or electron 'worm')."""
    h, w = band.shape
    length = rng.uniform(3, 22)
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    ang = rng.uniform(0, 2 * np.pi)
    curl = rng.normal(0, 0.008) if rng.random() < 0.25 else rng.normal(0, 0.001)
    n = int(length * 4) + 2
    steps = ang + curl * np.arange(n)
    x = x0 + np.cumsum(np.cos(steps)) * 0.25
    y = y0 + np.cumsum(np.sin(steps)) * 0.25
    energy = amplitude * 0.25 * rng.uniform(0.6, 1.4, n)
    deposit_track(band, x, y, energy)


def bad_column(band: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
    """A hot (bright) or dead (negative) column, whole or starting part-way up."""
    h, w = band.shape
    col = int(rng.integers(0, w))
    start = 0 if rng.random() < 0.6 else int(rng.integers(0, h - 8))
    if rng.random() < 0.6:
        band[start:, col] += sigma * rng.uniform(30, 300)
    else:
        band[start:, col] = -sigma * rng.uniform(20, 60)


def hot_pixels(band: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
    """A sprinkle of single hot pixels."""
    h, w = band.shape
    n = int(rng.integers(4, 30))
    band[rng.integers(0, h, n), rng.integers(0, w, n)] += sigma * rng.uniform(20, 400, n)


def amp_offset(band: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
    """A rectangular block with a wrong bias level and extra read noise (amplifier glitch)."""
    h, w = band.shape
    y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
    y1, x1 = int(rng.integers(y0 + 10, h + 1)), int(rng.integers(x0 + 10, w + 1))
    block = band[y0:y1, x0:x1]
    block += sigma * (
        rng.uniform(6, 20) * rng.choice([-1, 1]) + 2 * rng.standard_normal(block.shape)
    )
