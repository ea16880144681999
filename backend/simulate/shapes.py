"""GalSim building blocks: Sérsic laws, projected disks, strings of knots along curves.

All lengths are arcsec; angles are radians measured counter-clockwise from the +x axis.
Every builder returns a profile of unit flux so band fluxes can be applied later.
"""

from __future__ import annotations

import galsim
import numpy as np
from scipy.optimize import brentq
from scipy.special import gammainc, gammaincinv

from backend.simulate.optics import GSPARAMS

TRUNC = 5.0  # Sérsic profiles are truncated at TRUNC half-light radii (keeps FFTs small)
_UNIT_GAUSSIAN = galsim.Gaussian(sigma=1.0, gsparams=GSPARAMS)


def sersic(n: float, hlr: float) -> galsim.GSObject:
    """Unit-flux circular Sérsic (exponential / de Vaucouleurs where exact), truncated."""
    n = float(np.clip(round(n * 2) / 2, 0.5, 6.0))  # a grid of n keeps GalSim's caches warm
    if n == 1.0:
        return galsim.Exponential(half_light_radius=hlr, gsparams=GSPARAMS)
    return galsim.Sersic(
        n=n, half_light_radius=hlr, trunc=TRUNC * hlr, flux_untruncated=False, gsparams=GSPARAMS
    )


def quantised_n(n: float) -> float:
    return float(np.clip(round(n * 2) / 2, 0.5, 6.0))


def incline(profile: galsim.GSObject, q: float, theta: float) -> galsim.GSObject:
    """Project a face-on profile: minor axis scaled by ``q``, major axis at angle ``theta``."""
    c, s = np.cos(theta), np.sin(theta)
    return profile.transform(c, -s * q, s, c * q).withFlux(1.0)


def knot(
    x: float, y: float, sigma_along: float, sigma_across: float, angle: float, flux: float
) -> galsim.GSObject:
    """An elongated Gaussian of total ``flux`` centred at (x, y), long axis at ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    jac = (c * sigma_along, -s * sigma_across, s * sigma_along, c * sigma_across)
    ratio = flux / (sigma_along * sigma_across)  # Transform scales surface brightness
    return galsim.Transform(_UNIT_GAUSSIAN, jac=jac, offset=(x, y), flux_ratio=ratio)


def knots(
    x: np.ndarray,
    y: np.ndarray,
    sigma_along: np.ndarray,
    sigma_across: np.ndarray,
    angle: np.ndarray,
    weight: np.ndarray,
) -> galsim.GSObject:
    """Unit-flux sum of elongated Gaussians (arrays broadcast to a common length)."""
    x, y, sa, sc, ang, w = np.broadcast_arrays(x, y, sigma_along, sigma_across, angle, weight)
    w = w / w.sum()
    parts = [
        knot(*map(float, args)) for args in zip(x, y, sa, sc, ang, w, strict=True) if args[5] > 0
    ]
    return galsim.Add(parts) if len(parts) > 1 else parts[0]


def log_spiral(
    r0: float, r1: float, pitch: float, theta0: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points along a logarithmic spiral from radius r0 to r1: (x, y, tangent, r)."""
    b = np.tan(pitch)
    t = np.linspace(0.0, np.log(r1 / r0) / b, n)
    r = r0 * np.exp(b * t)
    theta = theta0 + t
    tangent = theta + np.pi / 2 - pitch
    return r * np.cos(theta), r * np.sin(theta), tangent, r


def arc(
    radius: float, phi0: float, span: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points on a circular arc centred on angle ``phi0``: (x, y, tangent angle)."""
    phi = phi0 + np.linspace(-span / 2, span / 2, n, endpoint=span < 2 * np.pi - 1e-6)
    return radius * np.cos(phi), radius * np.sin(phi), phi + np.pi / 2


def layer_product(
    profile: galsim.GSObject,
    height: float,
    theta: float,
    offset: tuple[float, float],
    extent: float,
    scale: float = 0.05,
) -> tuple[galsim.GSObject, float]:
    """``profile`` times a sech^2 layer (a dust lane) along angle ``theta`` through ``offset``.

    Returns the product as a unit-flux interpolated profile and its flux relative to
    ``profile`` (so ``profile - tau * share * product`` dims the layer by a factor 1 - tau).
    """
    n = 2 * int(np.ceil(extent / scale)) + 2
    image = profile.drawImage(nx=n, ny=n, scale=scale, method="no_pixel")
    yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2) * scale
    dist = (xx - offset[0]) * np.sin(theta) - (yy - offset[1]) * np.cos(theta)
    product = image.array * np.cosh(np.clip(dist / height, -30, 30)) ** -2
    share = float(product.sum() / max(image.array.sum(), 1e-30))
    ii = galsim.InterpolatedImage(
        galsim.Image(product / product.sum(), scale=scale),
        calculate_stepk=False,
        calculate_maxk=False,
        gsparams=GSPARAMS,
    )
    return ii, share


def sersic_b(n: float) -> float:
    return float(gammaincinv(2.0 * n, 0.5))


def half_light_radius(ns: list[float], hlrs: list[float], weights: list[float]) -> float:
    """Half-light radius of a sum of concentric Sérsic laws (untruncated approximation)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    bs = [sersic_b(n) for n in ns]

    def enclosed(r: float) -> float:
        return sum(
            wi * gammainc(2.0 * n, b * (r / re) ** (1.0 / n))
            for wi, n, b, re in zip(w, ns, bs, hlrs, strict=True)
        )

    lo, hi = min(hlrs) * 0.05, max(hlrs) * 20.0
    return float(brentq(lambda r: enclosed(r) - 0.5, lo, hi, xtol=1e-4))
