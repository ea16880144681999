"""Band fluxes of GalSim's CWW galaxy SEDs and of black bodies, tabulated on a redshift grid.

Colours come from redshifting real template spectra through the LSST bandpasses that GalSim
ships; drawing itself is achromatic (one flux per band), so the table is computed once per
process and interpolated.

A component of rest-frame absolute magnitude ``M`` (AB, rest-frame r band) with template ``t``
at redshift ``z`` has apparent magnitude ``M + DM(z) + K[t, band](z)`` where ``DM`` is the
distance modulus of a flat ΛCDM cosmology and ``K`` the K-correction plus colour term.
"""

from __future__ import annotations

from dataclasses import dataclass

import galsim
import numpy as np

TEMPLATES: tuple[str, ...] = ("E", "Sbc", "Scd", "Im")
_H_C_OVER_K_NM = 1.438777e7  # h c / k_B in nm K


@dataclass(frozen=True)
class PhotometryTable:
    """Distances and band K-corrections on a redshift grid (plain arrays: cheap to pickle)."""

    bands: tuple[str, ...]
    zeropoint: float
    z: np.ndarray  # (n_z,)
    distmod: np.ndarray  # (n_z,) mag
    kpc_per_arcsec: np.ndarray  # (n_z,) proper kpc per arcsec
    kcorr: np.ndarray  # (n_templates, n_bands, n_z) mag
    bb_log_temp: np.ndarray  # (n_t,) log10 K
    bb_colour: np.ndarray  # (n_t, n_bands) black-body mag minus its r-band mag

    def magnitudes(self, template: str, abs_mag: float, z: float) -> np.ndarray:
        """Apparent AB magnitudes per band of a rest-frame-r absolute magnitude ``abs_mag``."""
        t = TEMPLATES.index(template)
        dm = np.interp(z, self.z, self.distmod)
        k = np.array([np.interp(z, self.z, self.kcorr[t, b]) for b in range(len(self.bands))])
        return abs_mag + dm + k

    def fluxes(self, template: str, abs_mag: float, z: float) -> np.ndarray:
        """Counts per band (see :meth:`magnitudes`)."""
        return mag_to_counts(self.magnitudes(template, abs_mag, z), self.zeropoint)

    def scale(self, z: float) -> float:
        """Proper kpc per arcsec at ``z``."""
        return float(np.interp(z, self.z, self.kpc_per_arcsec))

    def blackbody_fluxes(self, temperature: float, mag_r: float) -> np.ndarray:
        """Counts per band of a black body of (observed-frame) ``temperature`` and r mag."""
        lt = np.log10(np.clip(temperature, 10 ** self.bb_log_temp[0], 10 ** self.bb_log_temp[-1]))
        colour = np.array(
            [np.interp(lt, self.bb_log_temp, self.bb_colour[:, b]) for b in range(len(self.bands))]
        )
        return mag_to_counts(mag_r + colour, self.zeropoint)


def mag_to_counts(mag: np.ndarray | float, zeropoint: float) -> np.ndarray:
    return np.power(10.0, -0.4 * (np.asarray(mag, dtype=np.float64) - zeropoint))


def counts_to_mag(counts: np.ndarray | float, zeropoint: float) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, zeropoint - 2.5 * np.log10(np.maximum(c, 1e-300)), np.inf)


def _bandpasses(bands: tuple[str, ...]) -> list[galsim.Bandpass]:
    return [
        galsim.Bandpass(f"LSST_{b}.dat", wave_type="nm").thin(rel_err=1e-3).withZeropoint("AB")
        for b in bands
    ]


def _blackbody(temperature: float) -> galsim.SED:
    def flambda(wave_nm: np.ndarray) -> np.ndarray:
        x = _H_C_OVER_K_NM / (np.asarray(wave_nm) * temperature)
        return 1e20 / (np.asarray(wave_nm) ** 5 * np.expm1(np.minimum(x, 700.0)))

    return galsim.SED(flambda, wave_type="nm", flux_type="flambda")


def build_table(
    bands: tuple[str, ...] = ("g", "r", "i", "z"),
    zeropoint: float = 27.0,
    z_max: float = 3.0,
    dz: float = 0.01,
) -> PhotometryTable:
    """Integrate every template through every band on the grid (about half a second)."""
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=70.0, Om0=0.3)
    zs = np.arange(dz, z_max + dz / 2, dz)
    ref = bands.index("r") if "r" in bands else 0
    bps = _bandpasses(bands)
    kcorr = np.empty((len(TEMPLATES), len(bands), len(zs)))
    for t, name in enumerate(TEMPLATES):
        sed = galsim.SED(f"CWW_{name}_ext.sed", wave_type="Ang", flux_type="flambda")
        rest_ref = sed.calculateMagnitude(bps[ref])
        for iz, z in enumerate(zs):
            shifted = sed.atRedshift(z)
            for b, bp in enumerate(bps):
                # atRedshift stretches f_lambda without the (1+z) bandwidth dimming.
                kcorr[t, b, iz] = shifted.calculateMagnitude(bp) - rest_ref + 2.5 * np.log10(1 + z)
    log_t = np.linspace(np.log10(2500.0), np.log10(40000.0), 24)
    bb = np.empty((len(log_t), len(bands)))
    for i, lt in enumerate(log_t):
        sed = _blackbody(10**lt)
        mags = np.array([sed.calculateMagnitude(bp) for bp in bps])
        bb[i] = mags - mags[ref]
    return PhotometryTable(
        bands=tuple(bands),
        zeropoint=zeropoint,
        z=zs,
        distmod=np.asarray(cosmo.distmod(zs).value),
        kpc_per_arcsec=np.asarray(cosmo.kpc_proper_per_arcmin(zs).value) / 60.0,
        kcorr=kcorr,
        bb_log_temp=log_t,
        bb_colour=bb,
    )
