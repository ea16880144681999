"""Survey styles the pretraining corpus renders: pixel scale, seeing, depth and bands.

Each preset is the demo simulator's :class:`SurveyConfig` with another instrument, so the same
galaxy population (bulge + disk Sérsic profiles, arms, bars, dust, mergers, neighbours, stars,
trails and detector artefacts) is seen as several real surveys would see it. Bands come from
the LSST set GalSim ships (u g r i z y); the composite's colours follow the preset's bands.
"""

from __future__ import annotations

from dataclasses import replace

from backend.simulate.config import SurveyConfig

BASE = SurveyConfig()

PRESETS: dict[str, SurveyConfig] = {
    # SDSS: 0.396"/px, ~1.4" seeing, shallow (sky noise ~5x the demo's)
    "sdss": replace(
        BASE, bands=("g", "r", "i"), pixel_scale=0.396, seeing=(1.5, 1.4, 1.3),
        sky_sigma=(2.0, 2.5, 3.0),
    ),
    # Galaxy Zoo style SDSS cutouts: zoomed on the galaxy (finer sampling, same seeing in px)
    "sdss-zoom": replace(
        BASE, bands=("g", "r", "i"), pixel_scale=0.12, seeing=(0.5, 0.45, 0.42),
        sky_sigma=(0.6, 0.8, 1.0),
    ),
    # Legacy Surveys (DECaLS): 0.262"/px, g r z, ~1.2" seeing
    "decals": replace(
        BASE, bands=("g", "r", "z"), pixel_scale=0.262, seeing=(1.35, 1.2, 1.1),
        sky_sigma=(0.8, 1.1, 2.2),
    ),
    # HSC wide: 0.168"/px, ~0.6" seeing, deep
    "hsc": replace(
        BASE, bands=("g", "r", "i"), pixel_scale=0.168, seeing=(0.75, 0.68, 0.58),
        sky_sigma=(0.2, 0.25, 0.3),
    ),
    # Euclid-like: 0.1"/px, diffraction-limited optical + broader near-infrared PSF
    "euclid": replace(
        BASE, bands=("r", "i", "z"), pixel_scale=0.1, seeing=(0.17, 0.2, 0.3), psf_beta=4.5,
        sky_sigma=(0.15, 0.2, 0.4), seeing_scatter=0.03,
    ),
}  # fmt: skip


def preset(name: str) -> SurveyConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown survey preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]
