"""Multi-band drawing in Fourier space: each GalSim component is transformed once, not per band.

A scene is a list of achromatic GalSim profiles (unit flux, arcsec, centred on the stamp
centre), each with one flux per band. Drawing one band is the sum of the components' Fourier
images weighted by their band fluxes, times the band's PSF (Moffat) and the pixel response,
then one inverse FFT: exactly what ``galsim.Convolve(...).drawImage()`` computes, but the
expensive ``drawKImage`` of each component is shared by all bands and PSF kernels are cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import galsim
import numpy as np
from scipy.special import j1

GSPARAMS = galsim.GSParams(
    folding_threshold=5e-3, maxk_threshold=1e-3, kvalue_accuracy=1e-4, maximum_fft_size=4096
)
FWHM_STEP = 0.01  # arcsec: per-object seeing is quantised so PSF kernels can be reused


@dataclass
class Component:
    """One achromatic piece of a scene: a unit-flux profile and its counts per band."""

    profile: galsim.GSObject
    flux: np.ndarray  # (n_bands,)


class KRenderer:
    """Draw components through per-band Moffat PSFs onto ``stamp`` x ``stamp`` pixels.

    The Fourier grid covers a box ``pad`` times the stamp (light beyond it folds back, so keep
    scenes inside it); the stamp centre is at pixel (stamp-1)/2 as in ``galsim.drawImage``.
    """

    def __init__(self, stamp: int, pixel_scale: float, psf_beta: float = 3.0, pad: int = 2):
        if stamp % 2:
            raise ValueError("stamp size must be even")
        self.stamp = stamp
        self.scale = pixel_scale
        self.beta = psf_beta
        self.n = pad * stamp
        self.dk = 2.0 * np.pi / (self.n * pixel_scale)
        k = (np.arange(self.n) - self.n // 2) * self.dk
        kx, ky = np.meshgrid(k, k)
        half_pixel = -0.5 * pixel_scale  # put the origin between the 4 central pixels
        self._pixel = (
            np.sinc(kx * pixel_scale / (2 * np.pi))
            * np.sinc(ky * pixel_scale / (2 * np.pi))
            * np.exp(-1j * (kx + ky) * half_pixel)
        )
        self._kx, self._ky = kx, ky
        self._kernel = lru_cache(maxsize=256)(self._make_kernel)
        self._aperture_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def psf(self, fwhm: float) -> galsim.GSObject:
        return galsim.Moffat(beta=self.beta, fwhm=fwhm, gsparams=GSPARAMS)

    def quantise(self, fwhm: float) -> float:
        return round(round(float(fwhm) / FWHM_STEP) * FWHM_STEP, 4)

    def _make_kernel(self, fwhm: float) -> np.ndarray:
        return self.kimage(self.psf(fwhm)) * self._pixel

    def kimage(self, profile: galsim.GSObject) -> np.ndarray:
        """Centred (n, n) complex Fourier image of ``profile`` (kValue(0) = flux)."""
        return profile.drawKImage(nx=self.n, ny=self.n, scale=self.dk).array

    def draw(
        self,
        components: Sequence[Component],
        fwhm: Sequence[float],
        intrinsic: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Noiseless (n_bands, stamp, stamp) float64 image in counts per pixel.

        With ``intrinsic=(n_first, band)`` also returns the PSF-free Fourier image of the
        first ``n_first`` components in ``band`` (for :meth:`half_light_radius`).
        """
        n_bands = len(fwhm)
        acc = np.zeros((n_bands, self.n, self.n), dtype=np.complex128)
        own = None
        for i, comp in enumerate(components):
            kimg = self.kimage(comp.profile)
            for b in range(n_bands):
                if comp.flux[b] != 0.0:
                    acc[b] += comp.flux[b] * kimg
            if intrinsic is not None and i + 1 == intrinsic[0]:
                own = acc[intrinsic[1]].copy()
        for b in range(n_bands):
            acc[b] *= self._kernel(self.quantise(fwhm[b]))
        lo = (self.n - self.stamp) // 2
        image = self._real(acc)[:, lo : lo + self.stamp, lo : lo + self.stamp]
        return image, own

    def half_light_radius(self, kimage: np.ndarray, centre: tuple[float, float]) -> float:
        """Radius (arcsec) of the circle around ``centre`` holding half of the light whose
        centred Fourier image is ``kimage``: enclosed fluxes are sums of the Fourier image
        times the transform of a disk, 2 pi R J1(kR) / k, so no pixel grid is involved."""
        radii, shells, weights = self._apertures()
        k1 = self._kx[0]
        phase = np.outer(np.exp(1j * k1 * centre[1]), np.exp(1j * k1 * centre[0]))
        per_shell = np.bincount(shells, weights=(kimage * phase).real.ravel())
        total = float(kimage[self.n // 2, self.n // 2].real)
        if total <= 0:
            return float("nan")
        enclosed = np.maximum.accumulate(weights @ per_shell)
        return float(np.exp(np.interp(0.5 * total, enclosed, np.log(radii))))

    def _apertures(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Radii, the |k| shell of every Fourier pixel, and disk transforms per shell."""
        if self._aperture_cache is None:
            radii = np.geomspace(0.03, 0.45 * self.n * self.scale, 48)
            k2 = np.rint((self._kx**2 + self._ky**2) / self.dk**2).astype(np.int64).ravel()
            levels, shells = np.unique(k2, return_inverse=True)
            kr = np.outer(radii, np.sqrt(levels) * self.dk)
            disk = np.ones_like(kr)
            np.divide(2 * j1(kr), kr, out=disk, where=kr > 0)
            weights = disk * (np.pi * radii**2)[:, None] * self.dk**2 / (4 * np.pi**2)
            self._aperture_cache = (radii, shells.ravel(), weights)
        return self._aperture_cache

    def _real(self, kimages: np.ndarray) -> np.ndarray:
        """Centred real images from a stack of centred Hermitian Fourier images."""
        half = np.fft.ifftshift(kimages, axes=(1, 2))[:, :, : self.n // 2 + 1]
        return np.fft.fftshift(np.fft.irfft2(half, s=(self.n, self.n)), axes=(1, 2))

    def draw_direct(self, components: Sequence[Component], fwhm: Sequence[float]) -> np.ndarray:
        """Like :meth:`draw` but with ``galsim.drawImage`` per band: exact aliasing for very
        bright, very sharp sources (saturated stars) whose Fourier images outrun the grid."""
        out = np.zeros((len(fwhm), self.stamp, self.stamp))
        for b, f in enumerate(fwhm):
            parts = [c.profile.withFlux(c.flux[b]) for c in components if c.flux[b] != 0.0]
            if parts:
                scene = galsim.Convolve(galsim.Add(parts), self.psf(f))
                out[b] = scene.drawImage(nx=self.stamp, ny=self.stamp, scale=self.scale).array
        return out
