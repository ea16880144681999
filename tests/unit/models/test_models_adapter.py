"""Input adapters: crop, resample and colour composites between a survey and an encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.visualization import make_lupton_rgb

from models import SimCLREncoder, build_model
from models.adapter import AdapterConfig, InputAdapter, lupton_composite
from models.errors import BandMismatchError


def test_lupton_composite_matches_astropy() -> None:
    rng = np.random.default_rng(0)
    r, g, b = (rng.gamma(1.0, 2.0, (20, 20)) - 0.5 for _ in range(3))
    expected = make_lupton_rgb(r, g, b, minimum=-0.2, stretch=3.0, Q=8).astype(np.float64) / 255
    got = lupton_composite(
        torch.tensor(np.stack([r, g, b])[None], dtype=torch.float32),
        stretch=3.0, q=8.0, minimum=-0.2,
    )[0].permute(1, 2, 0).numpy()  # fmt: skip
    assert np.abs(got - expected).max() <= 1.5 / 255  # astropy rounds to uint8


def test_crop_then_area_resample_gives_the_native_size() -> None:
    x = torch.zeros(2, 3, 128, 128)
    x[:, :, 32:96, 32:96] = 1.0  # a 64-px square in the middle
    adapter = InputAdapter(AdapterConfig(bands=["a", "b", "c"], crop=64, size=32))
    out = adapter(x)
    assert out.shape == (2, 3, 32, 32) and torch.all(out == 1.0)  # only the square is left
    whole = InputAdapter(AdapterConfig(bands=["a", "b", "c"], size=64))(x)
    assert whole.shape == (2, 3, 64, 64) and whole.sum() == pytest.approx(x.sum() / 4)


def test_composite_model_reads_any_band_order_through_its_adapter() -> None:
    adapter = AdapterConfig(
        bands=["g", "r", "i", "z"], mode="composite", rgb_bands=["i", "r", "g"], size=16,
        stretch=2.0,
    )  # fmt: skip
    model = SimCLREncoder(["g", "r", "i", "z"], adapter=adapter)
    assert model.input_channels == ["R", "G", "B"] and model.n_input_channels == 3
    x = torch.rand(4, 4, 48, 48)
    out = model.eval()(x)
    again = build_model(model.config)
    again.load_state_dict(model.state_dict())
    assert torch.allclose(again.eval()(x), out)
    with pytest.raises(BandMismatchError):
        model(torch.rand(2, 3, 48, 48))


def test_swapping_the_adapter_keeps_the_weights_valid() -> None:
    rgb = SimCLREncoder(["R", "G", "B"], adapter=AdapterConfig(bands=["R", "G", "B"], size=16))
    config = rgb.config
    config["bands"] = ["g", "r", "i"]
    config["adapter"] = AdapterConfig(
        bands=["g", "r", "i"], mode="composite", rgb_bands=["i", "r", "g"], size=16
    ).to_dict()
    taken = build_model(config)
    taken.load_state_dict(rgb.state_dict())  # no adapter weights to mismatch
    assert taken.eval()(torch.rand(2, 3, 32, 32)).shape == (2, rgb.embedding_dim)


def test_bad_adapter_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="three of the bands"):
        AdapterConfig(bands=["g", "r"], mode="composite", rgb_bands=["r", "g", "x"])
    with pytest.raises(ValueError, match="mode"):
        AdapterConfig(bands=["g"], mode="magic")
    with pytest.raises(ValueError, match="at least 4"):
        AdapterConfig(bands=["g"], size=2)
