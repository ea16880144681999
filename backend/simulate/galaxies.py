"""Morphological classes as GalSim scenes: bulges, disks, bars, spiral arms, knots, tails.

Each builder draws physical parameters (redshift, rest-frame r absolute magnitude, size in
kpc, inclination, orientation) from its own random generator and returns a :class:`Galaxy`:
unit-flux components with band fluxes from redshifted CWW templates (old bulges and bars: E;
disks: Sbc; arms: Scd; star-forming knots and irregulars: Im), plus its ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import galsim
import numpy as np

from backend.simulate.config import SurveyConfig
from backend.simulate.optics import GSPARAMS, Component
from backend.simulate.sed import PhotometryTable
from backend.simulate.shapes import (
    half_light_radius,
    incline,
    knots,
    layer_product,
    log_spiral,
    quantised_n,
    sersic,
)

MAX_DISK_HLR = 2.6  # arcsec: larger galaxies are re-drawn further away (they would overflow)
MAX_SPHEROID_HLR = 2.0
MAX_EDGE_ON_HLR = 4.5  # thin: may cross the stamp; big enough to resolve the dust lane
MIN_HLR = 0.25
Q0_DISK = 0.12  # intrinsic thickness of disks


@dataclass
class Context:
    """What every builder needs: survey settings, photometry table, GalSim random deviate."""

    cfg: SurveyConfig
    table: PhotometryTable
    gs_rng: galsim.BaseDeviate


@dataclass
class Galaxy:
    """A scene's main object: components plus the ground truth that goes into the catalog."""

    components: list[Component]
    truth: dict[str, float] = field(default_factory=dict)

    @property
    def flux(self) -> np.ndarray:
        return np.sum([c.flux for c in self.components], axis=0)

    def shifted(self, dx: float, dy: float) -> Galaxy:
        comps = [replace(c, profile=c.profile.shift(dx, dy)) for c in self.components]
        return Galaxy(comps, dict(self.truth))


@dataclass
class Part:
    """A component before photometry: profile, template, share of rest-frame r light, n, hlr."""

    profile: galsim.GSObject
    template: str
    share: float
    n: float = 1.0
    hlr: float = 0.0  # 0: not part of the structural (half-light) truth
    bulge: bool = False


def draw_redshift(rng: np.random.Generator) -> float:
    """Redshift of a resolved-galaxy sample (median ~0.085, tail to ~0.6)."""
    return float(np.clip(0.01 + rng.gamma(2.0, 0.045), 0.01, 1.2))


def angular_size(
    rng: np.random.Generator,
    ctx: Context,
    re_kpc: float,
    z: float | None,
    max_hlr: float,
    z_scale: float = 1.0,
) -> tuple[float, float]:
    """(z, hlr arcsec) of a galaxy of half-light radius ``re_kpc``.

    Without a given ``z``, one is drawn (scaled by ``z_scale``) and re-drawn while the galaxy
    would overflow ``max_hlr``: a sample selected to fit its stamps. The size is then clipped.
    """
    if z is None:
        for _ in range(12):
            z = max(draw_redshift(rng) * z_scale, 0.01)
            if re_kpc / ctx.table.scale(z) <= max_hlr:
                break
    return z, float(np.clip(re_kpc / ctx.table.scale(z), MIN_HLR, max_hlr))


def _axis_ratio(cos_i: float, q0: float = Q0_DISK) -> float:
    return float(np.sqrt(cos_i**2 + q0**2 * (1.0 - cos_i**2)))


def finish(
    parts: list[Part],
    ctx: Context,
    z: float,
    abs_mag: float,
    q: float,
    theta: float,
    extra: list[Component] | None = None,
) -> Galaxy:
    """Turn parts into components with band fluxes and compute the catalog truth.

    ``half_light_radius`` here is an analytic approximation (used to place companions, arcs,
    supernovae); the catalog value is measured on the PSF-free image when rendering.
    """
    total = sum(p.share for p in parts)
    comps, ns, hlrs, weights, bulge_flux, bulge_n = [], [], [], [], 0.0, np.nan
    ref = ctx.cfg.ref_band
    for p in parts:
        flux = ctx.table.fluxes(p.template, abs_mag - 2.5 * np.log10(p.share / total), z)
        comps.append(Component(p.profile, flux))
        if p.hlr > 0:
            ns.append(p.n)
            hlrs.append(p.hlr)
            weights.append(flux[ref])
        if p.bulge:
            bulge_flux += flux[ref]
            bulge_n = p.n
    comps.extend(extra or [])
    galaxy = Galaxy(comps)
    w = np.asarray(weights)
    galaxy.truth = {
        "redshift": z,
        "abs_mag_r": abs_mag,
        "sersic_n": float(np.dot(w, ns) / w.sum()),
        "bulge_sersic_n": float(bulge_n),
        "half_light_radius": half_light_radius(ns, hlrs, weights),
        "ellipticity": 1.0 - q,
        "position_angle": float(np.degrees(theta - np.pi / 2) % 180.0),
        "bulge_fraction": bulge_flux / float(sum(c.flux[ref] for c in comps)),
    }
    return galaxy


def elliptical(
    rng: np.random.Generator, ctx: Context, z: float | None = None, abs_mag: float | None = None
) -> Galaxy:
    """A single de Vaucouleurs-like Sérsic spheroid (n 3-6), red, E0-E6."""
    m = rng.normal(-21.3, 0.8) if abs_mag is None else abs_mag
    re_kpc = 10 ** (0.55 - 0.22 * (m + 21.3) + rng.normal(0, 0.12))
    z, hlr = angular_size(rng, ctx, re_kpc, z, MAX_SPHEROID_HLR)
    n = quantised_n(np.clip(rng.normal(4.2, 0.7), 3.0, 6.0))
    q = float(np.clip(rng.normal(0.75, 0.15), 0.38, 1.0))
    theta = rng.uniform(0, np.pi)
    body = incline(sersic(n, hlr), q, theta)
    return finish([Part(body, "E", 1.0, n, hlr, bulge=True)], ctx, z, m, q, theta)


def lenticular(
    rng: np.random.Generator, ctx: Context, z: float | None = None, abs_mag: float | None = None
) -> Galaxy:
    """S0: big bulge plus a smooth, red, armless disk (sometimes a lens plateau)."""
    return _disk_galaxy(rng, ctx, z, abs_mag, kind="lenticular")


def spiral(
    rng: np.random.Generator, ctx: Context, z: float | None = None, abs_mag: float | None = None
) -> Galaxy:
    """Bulge + exponential disk + logarithmic spiral arms + blue star-forming knots."""
    return _disk_galaxy(rng, ctx, z, abs_mag, kind="spiral")


def barred_spiral(
    rng: np.random.Generator, ctx: Context, z: float | None = None, abs_mag: float | None = None
) -> Galaxy:
    """A spiral whose arms start at the ends of a flat, elongated Sérsic bar."""
    return _disk_galaxy(rng, ctx, z, abs_mag, kind="barred_spiral")


def _disk_galaxy(
    rng: np.random.Generator, ctx: Context, z: float | None, abs_mag: float | None, kind: str
) -> Galaxy:
    m = rng.normal(-20.9, 0.85) if abs_mag is None else abs_mag
    re_kpc = 10 ** (0.62 - 0.12 * (m + 21.0) + rng.normal(0, 0.13))
    z, re_d = angular_size(rng, ctx, re_kpc, z, MAX_DISK_HLR)
    cos_i = rng.uniform(0.3, 1.0) if kind != "lenticular" else rng.uniform(0.15, 1.0)
    q = _axis_ratio(cos_i)
    q_bulge = _axis_ratio(cos_i, 0.65)
    theta = rng.uniform(0, np.pi)
    r_d = re_d / 1.678

    if kind == "lenticular":
        bt = rng.uniform(0.3, 0.65)
        n_b = quantised_n(rng.uniform(2.5, 4.5))
    else:
        bt = rng.uniform(0.04, 0.35)
        n_b = quantised_n(rng.uniform(1.0, 4.0) if bt > 0.12 else rng.uniform(1.0, 2.5))
    re_b = re_d * rng.uniform(0.12, 0.3) * (1.4 if kind == "lenticular" else 1.0)
    bulge = incline(sersic(n_b, re_b), q_bulge, theta)
    parts = [Part(bulge, "E", bt, n_b, re_b, bulge=True)]
    disk_share = 1.0 - bt

    if kind == "lenticular":
        disk_sed = "E" if rng.random() < 0.7 else "Sbc"
        if rng.random() < 0.35:  # lens: a flat plateau inside the disk
            lens = incline(sersic(0.5, re_d * 0.45), q, theta)
            parts.append(Part(lens, disk_sed, 0.12 * disk_share, 0.5, re_d * 0.45))
            disk_share *= 0.88
        disk = incline(sersic(1.0, re_d), q, theta)
        parts.append(Part(disk, disk_sed, disk_share, 1.0, re_d))
        return finish(parts, ctx, z, m, q, theta)

    # Bar (barred spirals): a flat Sérsic, elongated in the disk plane.
    r_start = max(1.3 * re_b, 0.35 * re_d)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "barred_spiral":
        bar_hlr = re_d * rng.uniform(0.4, 0.65)
        n_bar = quantised_n(rng.uniform(0.5, 0.8))
        bar_face = incline(sersic(n_bar, bar_hlr), rng.uniform(0.22, 0.35), phase)
        f_bar = rng.uniform(0.25, 0.4) * disk_share
        parts.append(Part(incline(bar_face, q, theta), "E", f_bar, n_bar, bar_hlr))
        disk_share -= f_bar
        r_start = 1.6 * bar_hlr

    # Spiral arms, HII knots and the smooth disk share the disk light.
    f_arms = rng.uniform(0.45, 0.65) * disk_share * (0.8 if kind == "barred_spiral" else 1.0)
    f_knots = rng.uniform(0.06, 0.15) * disk_share
    arms_face, knots_face = _spiral_pattern(rng, r_start, r_d, phase, kind)
    disk = incline(sersic(1.0, re_d), q, theta)
    parts += [
        Part(disk, "Sbc", disk_share - f_arms - f_knots, 1.0, re_d),
        Part(incline(arms_face, q, theta), "Scd", f_arms, 1.0, re_d),
        Part(incline(knots_face, q, theta), "Im", f_knots),
    ]
    return finish(parts, ctx, z, m, q, theta)


def _spiral_pattern(
    rng: np.random.Generator, r0: float, r_d: float, phase: float, kind: str
) -> tuple[galsim.GSObject, galsim.GSObject]:
    """Face-on arms (strings of elongated Gaussians on log spirals) and knots along them."""
    style = (
        "grand"
        if kind == "barred_spiral"
        else rng.choice(["grand", "multi", "flocculent"], p=[0.55, 0.25, 0.2])
    )
    pitch = np.radians(rng.uniform(11, 17) if rng.random() < 0.4 else rng.uniform(17, 28))
    r1 = r_d * rng.uniform(3.2, 4.2)
    if style == "grand":
        starts = [(phase, r0, r1), (phase + np.pi, r0, r1)]
    elif style == "multi":
        m = int(rng.integers(3, 5))
        starts = [(phase + 2 * np.pi * j / m, r0, r1 * rng.uniform(0.8, 1.0)) for j in range(m)]
    else:
        starts = []
        for _ in range(int(rng.integers(6, 10))):
            ra = r0 * rng.uniform(1.0, 2.5)
            starts.append((rng.uniform(0, 2 * np.pi), ra, ra * rng.uniform(1.6, 2.8)))
    xs, ys, angs, rs, sa, sc = [], [], [], [], [], []
    for th0, ra, rb in starts:
        length = (rb - ra) / np.sin(pitch)
        n = int(np.clip(length / 0.8, 6, 20))
        x, y, tang, r = log_spiral(ra, rb, pitch, th0, n)
        spacing = length / max(n - 1, 1)
        xs.append(x)
        ys.append(y)
        angs.append(tang)
        rs.append(r)
        sa.append(np.full(n, 0.6 * spacing))
        sc.append(0.08 + 0.035 * r)
    x, y, tang, r = (np.concatenate(a) for a in (xs, ys, angs, rs))
    if rng.random() < 0.5:  # S- or Z-wise winding, equally often
        y, tang = -y, -tang
    sa, sc = np.maximum(np.concatenate(sa), np.concatenate(sc)), np.concatenate(sc)
    ramp = np.clip((r - 0.7 * r0) / (0.6 * r0 + 1e-3), 0.1, 1.0)
    weight = r * np.exp(-r / r_d) * ramp * rng.lognormal(0, 0.4, r.size)
    arms = knots(x, y, sa, sc, tang, weight)

    # Knots: pick random points along the arms, scattered across them.
    n_k = int(rng.integers(8, 22))
    pick = rng.integers(0, r.size, n_k)
    across = rng.normal(0, 1, n_k) * sc[pick]
    along = rng.normal(0, 0.3, n_k) * sa[pick]
    t = tang[pick]
    kx = x[pick] + along * np.cos(t) - across * np.sin(t)
    ky = y[pick] + along * np.sin(t) + across * np.cos(t)
    size = rng.uniform(0.06, 0.16, n_k)
    kw = r[pick] * np.exp(-r[pick] / r_d) * rng.lognormal(0, 0.6, n_k)
    return arms, knots(kx, ky, size, size, 0.0, kw)


def edge_on(
    rng: np.random.Generator, ctx: Context, z: float | None = None, abs_mag: float | None = None
) -> Galaxy:
    """Thin + thick exponential disks seen at 85-90 deg, a bulge, and a dust lane across all."""
    m = rng.normal(-20.8, 0.9) if abs_mag is None else abs_mag
    re_kpc = 10 ** (0.62 - 0.12 * (m + 21.0) + rng.normal(0, 0.13))
    # Dust lanes need resolved (nearby) disks: edge-ons are drawn closer.
    z, re_d = angular_size(rng, ctx, re_kpc, z, MAX_EDGE_ON_HLR, z_scale=0.5)
    r_d = re_d / 1.678
    incl = rng.uniform(85.0, 90.0)
    h = r_d * rng.uniform(0.15, 0.22)
    h_thick = h * rng.uniform(2.0, 2.6)
    theta = rng.uniform(0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    ang = incl * galsim.degrees

    def layer(height: float, dx: float = 0.0, dy: float = 0.0) -> galsim.GSObject:
        disk = galsim.InclinedExponential(
            ang, scale_radius=r_d, scale_height=height, gsparams=GSPARAMS
        )
        return disk.rotate(theta * galsim.radians).shift(dx, dy)

    bt = rng.uniform(0.08, 0.45) if rng.random() < 0.85 else 0.0
    f_thick = rng.uniform(0.15, 0.3) * (1 - bt)
    n_b = quantised_n(rng.uniform(1.0, 4.0))
    re_b = re_d * rng.uniform(0.15, 0.35)
    parts = [
        Part(layer(h), "Sbc", 1.0 - bt - f_thick, 1.0, re_d),
        Part(layer(h_thick), "Sbc", f_thick, 1.0, re_d),
    ]
    if bt > 0:
        bulge = incline(sersic(n_b, re_b), rng.uniform(0.5, 0.85), theta)
        parts.append(Part(bulge, "E", bt, n_b, re_b, bulge=True))
    # Projected axis ratio: half-light height of the sech^2 layers (0.55 h) over the
    # half-light length of the edge-on exponential (~1.5 r_d), combined with cos(i).
    h_mean = (1 - bt - f_thick) / (1 - bt) * h + f_thick / (1 - bt) * h_thick
    q = float(np.hypot(np.cos(np.radians(incl)), 0.55 * h_mean / (1.5 * r_d)))
    galaxy = finish(parts, ctx, z, m, q, theta)

    # Dust lane, a sech^2 layer of height h_l < h: subtracting tau (h_l / h_k) x a copy of each
    # disk with height h_l dims its mid-plane by 1 - tau and never goes negative; the bulge
    # loses tau x (bulge x layer). Attenuation is stronger in the blue.
    tau = rng.uniform(0.92, 0.99) * np.array([1.0, 0.9, 0.8, 0.7])[: ctx.cfg.n_bands]
    h_lane = h * rng.uniform(0.8, 0.95)
    offset = h * (90.0 - incl) / 5.0 * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])
    dx, dy = -s * offset, c * offset
    thin_disk, thick_disk = galaxy.components[0], galaxy.components[1]
    hidden = thin_disk.flux * h_lane / h + thick_disk.flux * h_lane / h_thick
    extra = [Component(layer(h_lane, dx, dy), -tau * hidden)]
    if bt > 0:
        bulge = galaxy.components[2]
        lost, share = layer_product(bulge.profile, h_lane, theta, (dx, dy), 4 * re_b)
        extra.append(Component(lost, -tau * bulge.flux * share))
    galaxy.components.extend(extra)
    return galaxy


def irregular(
    rng: np.random.Generator, ctx: Context, z: float | None = None, abs_mag: float | None = None
) -> Galaxy:
    """A lopsided blue body, a few giant star-forming clumps and scattered HII regions."""
    m = rng.normal(-18.6, 1.0) if abs_mag is None else abs_mag
    re_kpc = 10 ** (0.3 - 0.1 * (m + 18.5) + rng.normal(0, 0.15))
    z, re = angular_size(rng, ctx, re_kpc, z, MAX_DISK_HLR, z_scale=0.7)  # dwarfs: nearby
    q = rng.uniform(0.4, 0.9)
    theta = rng.uniform(0, np.pi)
    shift = rng.normal(0, 0.2 * re, 2)
    body = incline(sersic(1.0, re), q, theta).shift(*shift)
    n_c = int(rng.integers(2, 7))
    rad = re * np.sqrt(rng.uniform(0, 1.4, n_c))
    phi = rng.uniform(0, 2 * np.pi, n_c)
    size = re * rng.uniform(0.12, 0.35, n_c)
    clumps = knots(
        rad * np.cos(phi),
        rad * np.sin(phi),
        size,
        size * rng.uniform(0.6, 1, n_c),
        rng.uniform(0, np.pi, n_c),
        rng.lognormal(0, 0.5, n_c),
    )
    hii = galsim.RandomKnots(int(rng.integers(6, 20)), profile=body.dilate(0.7), rng=ctx.gs_rng)
    hii = galsim.Convolve(hii, galsim.Gaussian(sigma=0.12, gsparams=GSPARAMS))
    f_body = rng.uniform(0.5, 0.7)
    f_clump = rng.uniform(0.5, 0.8) * (1 - f_body)
    parts = [
        Part(body, "Scd" if rng.random() < 0.5 else "Im", f_body, 1.0, re),
        Part(clumps, "Im", f_clump),
        Part(hii.withFlux(1.0), "Im", 1 - f_body - f_clump),
    ]
    return finish(parts, ctx, z, m, q, theta)


def merger(
    rng: np.random.Generator, ctx: Context, z: float | None = None, abs_mag: float | None = None
) -> Galaxy:
    """Two galaxies at one redshift, joined by a bridge, flinging out curved tidal tails."""
    kinds = [elliptical, lenticular, _armless_disk, _armless_disk]
    m = rng.normal(-21.1, 0.8) if abs_mag is None else abs_mag
    a = kinds[int(rng.integers(len(kinds)))](rng, ctx, z, m)
    z = a.truth["redshift"]
    b = kinds[int(rng.integers(len(kinds)))](rng, ctx, z, m + rng.uniform(0.0, 1.5))
    ra, rb = a.truth["half_light_radius"], b.truth["half_light_radius"]
    sep = float(np.clip(rng.uniform(0.8, 1.8) * (ra + rb), 1.0, 4.2))
    phi = rng.uniform(0, 2 * np.pi)
    fa, fb = a.flux[ctx.cfg.ref_band], b.flux[ctx.cfg.ref_band]
    ux, uy = np.cos(phi), np.sin(phi)
    pa = (-sep * fb / (fa + fb) * ux, -sep * fb / (fa + fb) * uy)
    pb = (sep * fa / (fa + fb) * ux, sep * fa / (fa + fb) * uy)
    comps = a.shifted(*pa).components + b.shifted(*pb).components
    sense = rng.choice([-1.0, 1.0])
    for gal, pos, sign in ((a, pa, 1.0), (b, pb, -1.0)):
        if rng.random() < 0.85:
            comps.append(_tidal_tail(rng, ctx, gal, pos, phi + sign * sense * np.pi / 2, sense))
    if rng.random() < 0.6:
        n = 10
        t = np.linspace(0.15, 0.85, n)
        bx, by = pa[0] + t * (pb[0] - pa[0]), pa[1] + t * (pb[1] - pa[1])
        bridge = knots(bx, by, sep / n, 0.25, phi, rng.lognormal(0, 0.3, n))
        comps.append(Component(bridge, ctx.table.fluxes("Scd", m + 4.0, z)))
    truth = dict(a.truth)
    return Galaxy(comps, truth)


def _armless_disk(
    rng: np.random.Generator, ctx: Context, z: float | None, abs_mag: float | None
) -> Galaxy:
    """A disk galaxy for mergers: spirals whose arms are washed out by the encounter."""
    return _disk_galaxy(rng, ctx, z, abs_mag, kind="spiral" if rng.random() < 0.4 else "lenticular")


def _tidal_tail(
    rng: np.random.Generator,
    ctx: Context,
    gal: Galaxy,
    pos: tuple[float, float],
    direction: float,
    sense: float,
) -> Component:
    """A curved, widening, fading stream of knots leaving ``gal`` towards ``direction``."""
    re = gal.truth["half_light_radius"]
    radius = re * rng.uniform(1.8, 3.5)
    span = np.radians(rng.uniform(80, 150))
    n = 16
    # An arc of a circle that starts at the galaxy and bends around it.
    centre = (
        pos[0] + radius * np.cos(direction - sense * np.pi / 2),
        pos[1] + radius * np.sin(direction - sense * np.pi / 2),
    )
    start = direction + sense * np.pi / 2
    phi = start - sense * np.linspace(0.15, 1.0, n) * span
    x = centre[0] + radius * np.cos(phi)
    y = centre[1] + radius * np.sin(phi)
    s = np.linspace(0, 1, n)
    width = 0.15 + 0.35 * s * re
    spacing = radius * span / n
    weight = np.exp(-2.0 * s) * rng.lognormal(0, 0.35, n)
    tail = knots(x, y, 0.7 * spacing, width, phi + np.pi / 2, weight)
    share = rng.uniform(0.08, 0.18)
    mag = gal.truth["abs_mag_r"] - 2.5 * np.log10(share)
    return Component(tail, ctx.table.fluxes("Scd", mag, gal.truth["redshift"]))


BUILDERS: dict[str, Callable[..., Galaxy]] = {
    "elliptical": elliptical,
    "lenticular": lenticular,
    "spiral": spiral,
    "barred_spiral": barred_spiral,
    "edge_on": edge_on,
    "irregular": irregular,
    "merger": merger,
}


def build_galaxy(
    cls: str,
    rng: np.random.Generator,
    ctx: Context,
    z: float | None = None,
    abs_mag: float | None = None,
) -> Galaxy:
    """Draw one galaxy of morphological class ``cls`` (a key of :data:`BUILDERS`)."""
    try:
        builder = BUILDERS[cls]
    except KeyError:
        raise ValueError(f"unknown galaxy class {cls!r} (known: {', '.join(BUILDERS)})") from None
    return builder(rng, ctx, z, abs_mag)
