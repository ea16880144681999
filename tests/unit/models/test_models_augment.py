"""Augmentations: shapes kept, per-band action, units, rotation conventions."""

from __future__ import annotations

import json
import math

import pytest
import torch

from models.augment import (
    AugmentConfig,
    Augmenter,
    affine_transform,
    center_crop,
    flip,
    fwhm_to_sigma_pixels,
    gaussian_blur,
    jitter_crop,
    redden,
    rotate,
)
from models.errors import BandMismatchError
from models.extinction import extinction_coefficient, extinction_coefficients

BANDS = ["g", "r", "i", "z"]


def _images(b: int = 3, c: int = 4, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_rotation_by_90_matches_rot90() -> None:
    x = _images()
    assert torch.allclose(rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(rotate(x, -90.0), torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(rotate(x, 180.0), torch.rot90(x, 2, dims=(-2, -1)), atol=1e-5)


def test_rotation_of_non_square_image_and_per_image_angles() -> None:
    x = _images(h=8, w=12)
    out = rotate(x, torch.tensor([0.0, 180.0, 360.0]))
    assert out.shape == x.shape
    assert torch.allclose(out[0], x[0], atol=1e-5)
    assert torch.allclose(out[1], x[1].flip(-1).flip(-2), atol=1e-5)
    assert torch.allclose(out[2], x[2], atol=1e-4)


def test_rotation_padding_modes() -> None:
    x = torch.ones(1, 1, 16, 16)
    zeros = rotate(x, 45.0, padding="zeros")
    reflected = rotate(x, 45.0, padding="reflection")
    assert zeros[0, 0, 0, 0] < 0.5  # the corner came from outside the stamp
    assert torch.allclose(reflected, x, atol=1e-5)


def test_flips_and_integer_jitter_are_exact() -> None:
    x = _images()
    assert torch.equal(flip(x, horizontal=True), x.flip(-1))
    assert torch.equal(flip(x, vertical=torch.tensor([True, False, True]))[1], x[1])
    shift = torch.tensor([[2.0, 0.0], [0.0, -3.0], [0.0, 0.0]])
    out = jitter_crop(x, shift, padding="zeros")
    assert out.shape == x.shape
    assert torch.allclose(out[0, :, :, 2:], x[0, :, :, :-2], atol=1e-5)  # content moved right
    assert torch.allclose(out[1, :, :-3, :], x[1, :, 3:, :], atol=1e-5)
    assert torch.allclose(out[2], x[2], atol=1e-6)
    assert jitter_crop(x, shift, out_size=10).shape == (3, 4, 10, 10)
    assert center_crop(x, 8).shape == (3, 4, 8, 8)


def test_zoom_magnifies_about_the_centre() -> None:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / (2 * 3.0**2))[None, None]
    zoomed = affine_transform(blob, 0.0, zoom=2.0)
    assert zoomed.shape == blob.shape
    assert zoomed.sum() > 3.0 * blob.sum()  # same peak, 4x the area
    assert torch.isclose(zoomed.max(), blob.max(), rtol=0.05)


def test_fwhm_to_sigma_uses_arcsec_and_pixel_scale() -> None:
    sigma = fwhm_to_sigma_pixels(1.0, 0.2)  # 1" FWHM at 0.2"/px = 5 px FWHM
    assert math.isclose(float(sigma), 5.0 / (2 * math.sqrt(2 * math.log(2))), rel_tol=1e-6)
    with pytest.raises(ValueError, match="pixel scale"):
        fwhm_to_sigma_pixels(1.0, 0.0)
    with pytest.raises(ValueError, match="pixel_scale_arcsec"):
        AugmentConfig(blur_fwhm_arcsec=(0.0, 1.0))


def test_blur_in_one_band_leaves_the_others_unchanged() -> None:
    x = _images()
    out = gaussian_blur(x, torch.tensor([0.0, 1.5, 0.0, 0.0]))
    assert out.shape == x.shape
    for band in (0, 2, 3):
        assert torch.equal(out[:, band], x[:, band])
    assert out[:, 1].std() < 0.6 * x[:, 1].std()  # white noise is smoothed
    assert torch.allclose(out[:, 1].mean(), x[:, 1].mean(), atol=0.05)  # flux kept


def test_blur_sigma_matches_gaussian_width() -> None:
    x = torch.zeros(1, 1, 41, 41)
    x[..., 20, 20] = 1.0
    out = gaussian_blur(x, 2.0)[0, 0]
    coords = torch.arange(41.0) - 20
    var = (out.sum(0) * coords**2).sum() / out.sum()
    assert math.isclose(float(var), 4.0, rel_tol=0.02)


def test_reddening_dims_blue_bands_more() -> None:
    x = torch.ones(2, 4, 4, 4)
    coeffs = extinction_coefficients(BANDS, "sdss")
    out = redden(x, torch.tensor([0.0, 0.2]), coeffs)
    assert torch.equal(out[0], x[0])
    ratios = out[1, :, 0, 0]
    expected = torch.tensor([10 ** (-0.4 * r * 0.2) for r in coeffs])
    assert torch.allclose(ratios, expected, atol=1e-6)
    assert bool(torch.all(ratios[:-1] < ratios[1:]))  # g dimmed most, z least


def test_extinction_coefficients_lookup() -> None:
    assert extinction_coefficient("g", "sdss") == 3.303
    assert extinction_coefficient("r") == 2.176  # DECam default
    assert extinction_coefficient("HSC-I") == 1.633
    assert extinction_coefficient("decam_z") == 1.217
    assert 1.3 < extinction_coefficient("F814W") < 1.7  # interpolated from the wavelength
    assert extinction_coefficient("g", overrides={"g": 9.0}) == 9.0
    with pytest.warns(UserWarning, match="no extinction coefficient"):
        assert extinction_coefficient("mystery") == 0.0


def test_augmenter_keeps_shape_and_is_seeded() -> None:
    cfg = AugmentConfig.contrastive(pixel_scale_arcsec=0.2)
    aug = Augmenter(cfg, BANDS)
    x = _images(b=5, h=24, w=24)
    a = aug(x, generator=torch.Generator().manual_seed(1))
    b = aug(x, generator=torch.Generator().manual_seed(1))
    c = aug(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert torch.isfinite(a).all()


def test_augmenter_noise_scales_with_image_noise() -> None:
    aug = Augmenter(AugmentConfig(rotation_deg=0, flip=False, jitter_pixels=0,
                                  noise_sigma=(1.0, 1.0)), ["a", "b"])  # fmt: skip
    x = torch.zeros(64, 2, 32, 32)
    x[:, 0] = torch.randn(64, 32, 32) * 0.1
    x[:, 1] = torch.randn(64, 32, 32) * 10.0
    added = aug(x) - x
    assert math.isclose(float(added[:, 0].std()), 0.1, rel_tol=0.1)
    assert math.isclose(float(added[:, 1].std()), 10.0, rel_tol=0.1)


def test_identity_config_and_band_check() -> None:
    x = _images()
    assert torch.equal(Augmenter(AugmentConfig.none(), BANDS)(x), x)
    with pytest.raises(BandMismatchError):
        Augmenter(AugmentConfig(), ["g", "r", "i"])(x)


def test_config_round_trips_through_json() -> None:
    cfg = AugmentConfig.contrastive(pixel_scale_arcsec=0.262)
    cfg.extinction_coeffs = {"g": 3.0}
    data = json.loads(json.dumps(cfg.to_dict()))
    assert AugmentConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown augmentation"):
        AugmentConfig.from_dict({"spin": 1})
