"""The autoencoder's residual scores: a small bright defect (a cosmic-ray-like spike) that the
mean squared residual hides among ordinary objects tops the peak and above-noise scores."""

from __future__ import annotations

import numpy as np
import torch

from models import ConvAutoencoder, reconstruction_errors, reconstruction_scores

SIZE = 32


def _flat_autoencoder() -> ConvAutoencoder:
    """An autoencoder whose reconstruction is blank, so each residual is the normalised input:
    the scores are then known functions of the pixels (linear normalisation, unit scale)."""
    torch.manual_seed(0)
    model = ConvAutoencoder(
        ["g", "r", "i"],
        image_size=SIZE,
        latent_dim=8,
        widths=(8, 16),
        normalization={
            "bands": ["g", "r", "i"], "offset": [0.0] * 3, "scale": [1.0] * 3,
            "mean": [0.0] * 3, "std": [1.0] * 3, "method": "linear", "clip": None,
        },
    )  # fmt: skip
    with torch.no_grad():
        model.to_pixels.weight.zero_()
        model.to_pixels.bias.zero_()
    return model.eval()


def _images() -> tuple[np.ndarray, int]:
    """40 noisy cutouts of different depths (noise sigma 0.5-1.5), one of them (sigma 0.8) with
    a single hot pixel in one band; returns the images and the spiked row."""
    rng = np.random.default_rng(0)
    sigmas = np.linspace(0.5, 1.5, 40)
    images = (rng.normal(size=(40, 3, SIZE, SIZE)) * sigmas[:, None, None, None]).astype(np.float32)
    spiked = int(np.argmin(np.abs(sigmas - 0.8)))
    images[spiked, 1, 10, 21] = 25.0
    return images, spiked


def _rank(values: np.ndarray, row: int) -> int:
    """Place of ``row`` when sorted strangest first (0 = top)."""
    return int(np.flatnonzero(np.argsort(-values, kind="stable") == row)[0])


def test_a_spike_tops_the_residual_scores_but_not_the_mean_squared_error() -> None:
    model = _flat_autoencoder()
    images, spiked = _images()
    scores = reconstruction_scores(model, images, batch_size=16, device="cpu")
    assert set(scores) == {"recon_error", "recon_peak", "recon_excess"}
    assert all(v.shape == (40,) and np.isfinite(v).all() for v in scores.values())
    mse = scores["recon_error"]
    np.testing.assert_allclose(
        mse, reconstruction_errors(model, images, batch_size=16, device="cpu"), rtol=1e-4
    )
    assert _rank(mse, spiked) > 10  # deeper noisy cutouts hide it in the mean
    assert _rank(scores["recon_peak"], spiked) == 0
    assert _rank(scores["recon_excess"], spiked) == 0


def test_the_noise_floor_keeps_pure_noise_out_of_the_excess() -> None:
    model = _flat_autoencoder()
    images, spiked = _images()
    scores = reconstruction_scores(model, images, batch_size=16, device="cpu")
    normal = np.delete(np.arange(40), spiked)
    # Gaussian noise: r / sigma^2 is chi-squared(1), whose mean beyond 4 is 0.080 (mean 1): the
    # excess of a pure-noise cutout is ~8% of its mean residual, whatever the noise level
    ratio = scores["recon_excess"][normal] / scores["recon_error"][normal]
    assert ratio.min() > 0.04 and ratio.max() < 0.14
    assert abs(np.corrcoef(ratio, np.linspace(0.5, 1.5, 40)[normal])[0, 1]) < 0.5
