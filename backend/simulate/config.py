"""The instrument and population settings of the simulated demo survey (one frozen object)."""

from __future__ import annotations

from dataclasses import dataclass

SIMULATOR_VERSION = "1.0"

# Morphological classes (catalog ``true_class``) and their share of the population.
CLASS_FRACTIONS: dict[str, float] = {
    "spiral": 0.30,
    "barred_spiral": 0.17,
    "elliptical": 0.17,
    "lenticular": 0.13,
    "edge_on": 0.11,
    "irregular": 0.07,
    "merger": 0.05,
}
CLASSES: tuple[str, ...] = tuple(CLASS_FRACTIONS)

# Rare injected anomalies (catalog ``anomaly_type``; "" for normal objects), equal shares.
ANOMALY_KINDS: tuple[str, ...] = (
    "strong_lens",
    "ring_galaxy",
    "blended_pair",
    "bright_star",
    "supernova",
    "satellite_track",
    "cosmic_ray",
    "detector_artifact",
)


@dataclass(frozen=True)
class SurveyConfig:
    """Bands, pixels, seeing, depth and detector of a simulated survey (picklable)."""

    bands: tuple[str, ...] = ("g", "r", "i", "z")
    stamp: int = 64  # pixels per side
    pixel_scale: float = 0.2  # arcsec / pixel
    zeropoint: float = 27.0  # AB magnitude of 1 count
    seeing: tuple[float, ...] = (0.76, 0.68, 0.6, 0.66)  # median PSF FWHM per band, arcsec
    seeing_scatter: float = 0.07  # fractional per-object scatter of the FWHM
    psf_beta: float = 3.0  # Moffat index (ground-based wings)
    sky_sigma: tuple[float, ...] = (0.35, 0.45, 0.6, 1.0)  # sky noise per pixel, counts
    gain: float = 4.0  # counts per photo-electron variance unit (source Poisson noise)
    saturation: float = 25_000.0  # counts at which a pixel saturates and bleeds
    ra_center: float = 150.1  # deg, centre of the fake sky patch
    dec_center: float = 2.2
    patch_size: float = 3.0  # deg, side of the square patch

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def ref_band(self) -> int:
        """Index of the band absolute magnitudes and bulge fractions refer to (r)."""
        return self.bands.index("r") if "r" in self.bands else 0
