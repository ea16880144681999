"""Rare anomalies injected into the demo survey, each with a documented ``true_class``.

* ``strong_lens``: a massive elliptical (true_class ``elliptical``) with a blue arc or
  Einstein ring of a lensed z = 1-2.6 star-forming source, often with a counter-image.
* ``ring_galaxy``: a Hoag/Cartwheel-like red nucleus inside a detached, knotty blue ring
  (true_class ``irregular``: a peculiar galaxy).
* ``blended_pair``: an unrelated galaxy at another redshift overlapping the target.
* ``bright_star``: a saturated foreground star with diffraction spikes and bleed trails.
* ``supernova``: a blue point source on the target galaxy's disk.
* ``satellite_track``: a PSF-wide straight trail across the stamp, usually in one band.
* ``cosmic_ray``: sharp (un-blurred) short tracks in one band.
* ``detector_artifact``: a hot/dead column, hot pixels or an amplifier offset block.

All but the first two keep the target galaxy and its class; their extra light is not part of
the catalog magnitudes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import galsim
import numpy as np

from backend.simulate import detector
from backend.simulate.galaxies import (
    Context,
    Galaxy,
    Part,
    angular_size,
    build_galaxy,
    draw_redshift,
    elliptical,
    finish,
)
from backend.simulate.optics import GSPARAMS, Component
from backend.simulate.shapes import arc, incline, knot, knots, quantised_n, sersic

PixelEffect = Callable[[np.ndarray], None]  # edits a (C, H, W) image in place, after noise

HOST_CLASS = {"strong_lens": "elliptical", "ring_galaxy": "irregular"}
_SPIKE_ANGLES = (0.0, np.pi / 2)  # the telescope's spider: spikes along the pixel axes


@dataclass
class Injection:
    """Extra light and pixel edits that turn a normal scene into an anomaly."""

    components: list[Component] = field(default_factory=list)
    direct: list[Component] = field(default_factory=list)  # very bright: drawn by GalSim itself
    effects: list[PixelEffect] = field(default_factory=list)


def make_host(kind: str, rng: np.random.Generator, ctx: Context) -> Galaxy | None:
    """The target galaxy for kinds that need a special one (lens, ring), else None."""
    if kind == "strong_lens":
        return elliptical(rng, ctx, z=rng.uniform(0.12, 0.4), abs_mag=rng.normal(-22.3, 0.35))
    if kind == "ring_galaxy":
        return ring_galaxy(rng, ctx)
    return None


def inject(kind: str, host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """Draw the anomaly ``kind`` around ``host``."""
    try:
        maker = _INJECTORS[kind]
    except KeyError:
        raise ValueError(
            f"unknown anomaly kind {kind!r} (known: {', '.join(_INJECTORS)})"
        ) from None
    return maker(host, rng, ctx)


def ring_galaxy(rng: np.random.Generator, ctx: Context) -> Galaxy:
    """A compact red nucleus inside a detached, knotty, star-forming ring."""
    m = rng.normal(-20.6, 0.7)
    z, radius = angular_size(rng, ctx, rng.uniform(7.0, 16.0), None, 3.4)
    radius = max(radius, 1.2)
    cos_i = rng.uniform(0.45, 1.0)
    theta = rng.uniform(0, np.pi)
    n_nuc = quantised_n(rng.uniform(2.0, 4.0))
    re_nuc = radius * rng.uniform(0.1, 0.2)
    nucleus = incline(sersic(n_nuc, re_nuc), rng.uniform(0.7, 1.0), theta)
    off = rng.normal(0, 0.12 * radius, 2) if rng.random() < 0.5 else np.zeros(2)
    n = 40
    x, y, tang = arc(radius, 0.0, 2 * np.pi, n)
    width = radius * rng.uniform(0.08, 0.16)
    lopsided = 1 + rng.uniform(0, 0.7) * np.cos(np.arctan2(y, x) - rng.uniform(0, 2 * np.pi))
    ring = knots(x, y, 2 * np.pi * radius / n, width, tang, lopsided * rng.lognormal(0, 0.3, n))
    pick = rng.integers(0, n, int(rng.integers(8, 18)))
    size = rng.uniform(0.06, 0.15, pick.size)
    hii = knots(
        x[pick] + rng.normal(0, width, pick.size),
        y[pick] + rng.normal(0, width, pick.size),
        size,
        size,
        0.0,
        rng.lognormal(0, 0.5, pick.size) * lopsided[pick],
    )
    parts = [
        Part(nucleus.shift(*off), "E", rng.uniform(0.25, 0.45), n_nuc, re_nuc, bulge=True),
        Part(incline(ring, cos_i, theta), "Scd", 0.45, 1.0, radius),
        Part(incline(hii, cos_i, theta), "Im", 0.15),
    ]
    return finish(parts, ctx, z, m, cos_i, theta)


def _strong_lens(host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """Arc(s) or an Einstein ring of a blue background source around the host elliptical."""
    hlr = host.truth["half_light_radius"]
    theta_e = float(np.clip(max(rng.uniform(1.2, 2.4), 1.1 * hlr), 1.2, 3.2))
    # Magnified source: as bright in g as a good part of the lens, with Im colours at z_s.
    colours = ctx.table.fluxes("Im", -21.0, rng.uniform(1.0, 2.6))
    flux = colours / colours[0] * host.flux[0] * rng.uniform(0.8, 2.0)
    phi0 = rng.uniform(0, 2 * np.pi)
    span = 2 * np.pi if rng.random() < 0.25 else np.radians(rng.uniform(50, 160))
    n = int(np.clip(np.degrees(span) / 7, 8, 50))
    x, y, tang = arc(theta_e, phi0, span, n)
    phi = np.arctan2(y, x)
    if span >= 2 * np.pi:
        weight = (1 + 0.5 * np.cos(phi - phi0)) * rng.lognormal(0, 0.2, n)
    else:
        weight = np.exp(-0.5 * (np.angle(np.exp(1j * (phi - phi0))) / (span / 3.5)) ** 2)
        weight *= rng.lognormal(0, 0.2, n)
    spacing = theta_e * span / n
    q_ring = rng.uniform(0.85, 1.0)
    lensed = incline(
        knots(x, y, 0.8 * spacing, rng.uniform(0.05, 0.1), tang, weight),
        q_ring,
        rng.uniform(0, np.pi),
    )
    comps = [Component(lensed, flux)]
    if span < 2 * np.pi and rng.random() < 0.7:
        r_c = theta_e * rng.uniform(0.45, 0.8)
        ang = phi0 + np.pi + rng.normal(0, 0.2)
        counter = knot(r_c * np.cos(ang), r_c * np.sin(ang), 0.14, 0.08, ang + np.pi / 2, 1.0)
        comps.append(Component(counter, flux * rng.uniform(0.1, 0.3)))
    return Injection(comps)


def _blended_pair(host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """An unrelated galaxy (other redshift, other class) overlapping the target."""
    cls = str(rng.choice(["elliptical", "lenticular", "spiral", "edge_on", "irregular"]))
    other = build_galaxy(cls, rng, ctx, z=draw_redshift(rng))
    ref = ctx.cfg.ref_band
    ratio = rng.uniform(0.3, 1.3) * host.flux[ref] / other.flux[ref]
    sep = np.clip(
        rng.uniform(0.5, 1.3)
        * (host.truth["half_light_radius"] + other.truth["half_light_radius"]),
        0.8,
        4.0,
    )
    ang = rng.uniform(0, 2 * np.pi)
    other = other.shifted(sep * np.cos(ang), sep * np.sin(ang))
    return Injection([Component(c.profile, c.flux * ratio) for c in other.components])


def _point_source(x: float, y: float) -> galsim.GSObject:
    return galsim.DeltaFunction(gsparams=GSPARAMS).shift(x, y)


def _bright_star(host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """A saturated star near the target, with diffraction spikes (saturation: survey step)."""
    r, ang = rng.uniform(1.0, 5.0), rng.uniform(0, 2 * np.pi)
    x, y = r * np.cos(ang), r * np.sin(ang)
    flux = ctx.table.blackbody_fluxes(rng.uniform(3500, 7000), rng.uniform(10.5, 13.5))
    comps = [Component(_point_source(x, y), flux * 0.985)]
    length = rng.uniform(1.5, 2.6)
    for a in _SPIKE_ANGLES:
        comps.append(Component(knot(x, y, length, 0.03, a, 1.0), flux * 0.005))
        comps.append(Component(knot(x, y, 3.0 * length, 0.03, a, 1.0), flux * 0.0025))
    return Injection(direct=comps)


def _supernova(host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """A hot (blue) point source on the host's disk, as bright as a good part of the host."""
    z = host.truth["redshift"]
    r = rng.uniform(0.25, 1.3) * host.truth["half_light_radius"]
    ang = rng.uniform(0, 2 * np.pi)
    mag_host = ctx.cfg.zeropoint - 2.5 * np.log10(host.flux[ctx.cfg.ref_band])
    temperature = rng.uniform(9000, 16000) / (1 + z)
    flux = ctx.table.blackbody_fluxes(temperature, mag_host + rng.uniform(-0.8, 1.5))
    return Injection([Component(_point_source(r * np.cos(ang), r * np.sin(ang)), flux)])


def _pixel_coords(ctx: Context, rng: np.random.Generator, spread: float) -> tuple[float, float]:
    c = (ctx.cfg.stamp - 1) / 2
    return c + rng.uniform(-spread, spread), c + rng.uniform(-spread, spread)


def _satellite_track(host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """A straight PSF-wide trail, in one band (one exposure) or, rarely, in all."""
    cfg = ctx.cfg
    bands = [int(rng.integers(cfg.n_bands))] if rng.random() < 0.75 else list(range(cfg.n_bands))
    x0, y0 = _pixel_coords(ctx, rng, 0.3 * cfg.stamp)
    angle = rng.uniform(0, np.pi)
    level = rng.uniform(8, 60)
    params = [(b, level * cfg.sky_sigma[b], cfg.seeing[b] / 2.355 / cfg.pixel_scale) for b in bands]

    def effect(image: np.ndarray) -> None:
        for b, peak, sigma in params:
            detector.line(image[b], x0, y0, angle, peak, sigma)

    return Injection(effects=[effect])


def _cosmic_ray(host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """One to three sharp tracks in a single band."""
    band = int(rng.integers(ctx.cfg.n_bands))
    amplitude = rng.uniform(40, 400) * ctx.cfg.sky_sigma[band]
    n = int(rng.integers(1, 4))
    local = np.random.default_rng(rng.integers(2**63))

    def effect(image: np.ndarray) -> None:
        for _ in range(n):
            detector.cosmic_ray(image[band], local, amplitude)

    return Injection(effects=[effect])


def _detector_artifact(host: Galaxy, rng: np.random.Generator, ctx: Context) -> Injection:
    """A bad column, hot pixels or an amplifier offset in one or more bands (all finite)."""
    sub = {
        "bad_column": detector.bad_column,
        "hot_pixels": detector.hot_pixels,
        "amp_offset": detector.amp_offset,
    }[str(rng.choice(["bad_column", "hot_pixels", "amp_offset"]))]
    n_b = ctx.cfg.n_bands
    bands = rng.choice(n_b, size=int(rng.integers(1, n_b + 1)), replace=False)
    local = np.random.default_rng(rng.integers(2**63))
    same_place = rng.random() < 0.5  # a sensor defect sits at one place in every band

    def effect(image: np.ndarray) -> None:
        seed = local.integers(2**63)
        for b in sorted(bands):
            place = np.random.default_rng(seed) if same_place else local
            sub(image[b], place, ctx.cfg.sky_sigma[b])

    return Injection(effects=[effect])


_INJECTORS: dict[str, Callable[[Galaxy, np.random.Generator, Context], Injection]] = {
    "strong_lens": _strong_lens,
    "ring_galaxy": lambda host, rng, ctx: Injection(),
    "blended_pair": _blended_pair,
    "bright_star": _bright_star,
    "supernova": _supernova,
    "satellite_track": _satellite_track,
    "cosmic_ray": _cosmic_ray,
    "detector_artifact": _detector_artifact,
}
