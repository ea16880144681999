"""Pixel anomaly scorers: sharper than the PSF (cosmic rays, hot pixels) and rotational
asymmetry (blends, off-centre transients), on small synthetic cutouts with a Gaussian PSF and
noise; a plain galaxy and a bright star are flagged by neither."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from backend.latent.anomaly import AnomalyRanker
from backend.latent.errors import LatentError
from backend.latent.morphology import (
    DEFAULT_Q_PSF,
    asymmetry,
    neighbour_median,
    psf_sharpness,
    psf_sigma,
    sharpness,
    sharpness_limit,
)

SIZE, BANDS, PSF_SIGMA, NOISE = 40, 3, 1.3, 1.0  # PSF FWHM ~3 px


def galaxy(
    rng: np.random.Generator, flux: float = 4000.0, q: float = 0.6, dx: float = 0.0
) -> np.ndarray:
    """A centred (or shifted by ``dx``) inclined exponential disc, PSF-blurred, noiseless."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - (SIZE - 1) / 2
    angle = rng.uniform(0, np.pi)
    u = (xx - dx) * np.cos(angle) + yy * np.sin(angle)
    v = -(xx - dx) * np.sin(angle) + yy * np.cos(angle)
    disc = np.exp(-np.hypot(u, v / q) / rng.uniform(2.0, 4.0))
    disc = ndimage.gaussian_filter(disc, PSF_SIGMA)
    colours = rng.uniform(0.6, 1.4, BANDS)[:, None, None]
    return (flux * colours * disc / disc.sum()).astype(np.float32)


def point(x: float, y: float, flux: float) -> np.ndarray:
    """A PSF-blurred point source at pixel (x, y) offsets from the centre, all bands."""
    image = np.zeros((SIZE, SIZE))
    image[round((SIZE - 1) / 2 + y), round((SIZE - 1) / 2 + x)] = flux
    return np.repeat(ndimage.gaussian_filter(image, PSF_SIGMA)[None], BANDS, 0).astype(np.float32)


def noisy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (image + rng.normal(0, NOISE, image.shape)).astype(np.float32)


def plain_sample(rng: np.random.Generator, n: int = 40) -> np.ndarray:
    """Plain galaxies of varied brightness and shape, a few with a bright star at the centre
    (a PSF-limited source: the sharpest thing a real survey holds)."""
    out = []
    for i in range(n):
        image = galaxy(rng, flux=rng.uniform(1500, 20000), q=rng.uniform(0.3, 1.0))
        if i % 8 == 0:
            image = image + point(0, 0, 30000)
        out.append(noisy(image, rng))
    return np.stack(out)


def test_neighbour_median_is_the_upper_median_of_the_8_neighbours() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 2, 9, 11)).astype(np.float32)  # > one cache block: blockwise
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)], mode="edge")
    stack = [padded[..., 1 + dy : 10 + dy, 1 + dx : 12 + dx] for dy in (-1, 0, 1)
             for dx in (-1, 0, 1) if dy or dx]  # fmt: skip
    expected = np.sort(np.stack(stack), axis=0)[4]
    np.testing.assert_array_equal(neighbour_median(x), expected)


def test_psf_sharpness_is_measured_from_bright_peaks() -> None:
    rng = np.random.default_rng(1)
    q_psf = psf_sharpness(plain_sample(rng))
    # a Gaussian PSF of FWHM ~3 px: a point source rises ~0.3 of its peak above its ring
    assert 0.2 < q_psf < 0.45
    assert psf_sigma(q_psf) == pytest.approx(PSF_SIGMA, rel=0.15)  # the PSF, recovered
    assert psf_sharpness(rng.normal(0, 1, (5, 1, 16, 16))) == DEFAULT_Q_PSF  # no bright peak


def test_sharpness_flags_cosmic_rays_and_hot_pixels_not_galaxies_or_stars() -> None:
    rng = np.random.default_rng(2)
    plain = plain_sample(rng)
    limit = sharpness_limit(psf_sharpness(plain))
    cosmic = noisy(galaxy(rng, flux=8000), rng)
    rows = np.arange(12, 20)
    cosmic[1, rows, rows + 3] += 40 * NOISE  # a sharp diagonal track in one band
    hot = noisy(galaxy(rng, flux=8000), rng)
    hot[2, 5, 30] += 25 * NOISE  # one hot pixel
    star = noisy(galaxy(rng) + point(6, -4, 200000), rng)  # a very bright star: PSF-blurred
    scores = sharpness(np.concatenate([plain, np.stack([cosmic, hot, star])]), limit)
    order = np.argsort(-scores)
    n = len(plain)
    assert set(order[:2]) == {n, n + 1}, "the cosmic ray and the hot pixel rank first"
    assert scores[n + 2] < scores[n + 1] and scores[n + 2] <= np.sort(scores[:n])[-3]


@pytest.mark.parametrize("smooth", [0.0, PSF_SIGMA])
def test_asymmetry_flags_blends_and_off_centre_point_sources_not_plain_galaxies(
    smooth: float,
) -> None:
    rng = np.random.default_rng(3)
    plain = np.stack([noisy(galaxy(rng, q=rng.uniform(0.3, 1.0)), rng) for _ in range(30)])
    host = galaxy(rng, flux=6000)
    blend = noisy(host + galaxy(rng, flux=4000, dx=7.0), rng)
    supernova = noisy(host + point(3, 2, 2500), rng)
    scores = asymmetry(np.concatenate([plain, np.stack([blend, supernova])]), smooth)
    assert scores[30] > scores[:30].max() and scores[31] > scores[:30].max()
    assert np.abs(scores[:30]).max() < 0.1  # a symmetric galaxy is near 0 despite its noise


@pytest.mark.parametrize("smooth", [0.0, PSF_SIGMA])
def test_asymmetry_subtracts_the_noise_own_asymmetry(smooth: float) -> None:
    rng = np.random.default_rng(4)
    image = galaxy(rng, q=0.5)
    faint, bright = noisy(image * 0.25, rng), noisy(image * 4.0, rng)
    a_faint, a_bright = asymmetry(np.stack([faint, bright]), smooth)
    assert abs(a_faint - a_bright) < 0.08  # uncorrected, noise alone puts the faint one ~1


def test_ranker_needs_the_pixel_scores_it_is_asked_for() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    with pytest.raises(LatentError, match="sharpness"):
        AnomalyRanker.fit(x, scorers=("knn", "sharpness"))
    sharp = np.zeros(50, np.float32)
    sharp[7] = 9.0
    ranker = AnomalyRanker.fit(
        x, scorers=("knn", "sharpness"), pixels={"sharpness": sharp}, combine_with="max"
    )
    assert ranker.scores["rank"].iat[7] == 1 and ranker.scorers == ["knn", "sharpness"]
    with pytest.raises(LatentError, match="3 sharpness scores for 50"):
        AnomalyRanker.fit(x, scorers=("sharpness",), pixels={"sharpness": sharp[:3]})
