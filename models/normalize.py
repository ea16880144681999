"""Per-band input normalisation: ``(asinh((x - offset) / scale) - mean) / std``.

``offset`` is the band's typical sky level and ``scale`` its typical robust noise (times a
softening factor), both in the survey's flux units and measured once on a sample of the survey
by :func:`fit_normalization`. The arcsinh is linear within a few noise sigmas and logarithmic for
bright cores, so faint outskirts and bright bulges both stay visible; ``mean``/``std`` then bring
each band to zero mean and unit variance. The statistics travel in the model config, so a model
sees the same scaling at training and inference whatever the flux units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a Gaussian -> its sigma
STAT_PIXELS = 1024  # pixels per image and band used by fit_normalization (a regular sub-grid)


def robust_sigma(x: Tensor, max_pixels: int | None = None) -> Tensor:
    """Per-image, per-band noise ``1.4826 * MAD`` over the last two axes -> shape (..., C).

    With ``max_pixels`` the MAD is taken on a regular sub-grid of at most about that many
    pixels per band (faster; ~5% precision for 1024 pixels).
    """
    h, w = x.shape[-2:]
    if max_pixels is not None and h * w > max_pixels:
        step = math.ceil(math.sqrt(h * w / max_pixels))
        x = x[..., ::step, ::step]
    flat = x.flatten(-2).float()
    med = flat.median(dim=-1, keepdim=True).values
    return MAD_TO_SIGMA * (flat - med).abs().median(dim=-1).values


@dataclass
class NormalizationConfig:
    """Per-band statistics of the normalisation (all lists have one value per band)."""

    bands: list[str]
    offset: list[float]
    scale: list[float]
    mean: list[float]
    std: list[float]
    method: str = "asinh"  # "asinh" or "linear" ((x - offset) / scale, then standardised)
    softening: float = 1.0  # scale = softening * robust noise
    clip: float | None = 50.0  # clamp normalised values to +-clip (None: no clamp)

    def __post_init__(self) -> None:
        n = len(self.bands)
        for name in ("offset", "scale", "mean", "std"):
            values = [float(v) for v in getattr(self, name)]
            if len(values) != n:
                raise ValueError(f"normalization {name}: {len(values)} values for {n} bands")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"normalization {name}: non-finite value in {values}")
            setattr(self, name, values)
        if any(v <= 0 for v in self.scale + self.std):
            raise ValueError("normalization scale and std must be positive")
        if self.method not in ("asinh", "linear"):
            raise ValueError(f"normalization method {self.method!r}: use 'asinh' or 'linear'")
        self.bands = [str(b) for b in self.bands]

    @classmethod
    def identity(cls, bands: Sequence[str]) -> NormalizationConfig:
        """No scaling at all (for inputs that are already well scaled)."""
        n = len(bands)
        return cls(list(bands), [0.0] * n, [1.0] * n, [0.0] * n, [1.0] * n, "linear", 1.0, None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalizationConfig:
        return cls(**data)


def _transform(x: Tensor, offset: Tensor, scale: Tensor, method: str) -> Tensor:
    y = (x - offset) / scale
    return torch.asinh(y) if method == "asinh" else y


def fit_normalization(
    images: Any,
    bands: Sequence[str],
    *,
    sample_size: int = 2048,
    softening: float = 1.0,
    method: str = "asinh",
    clip: float | None = 50.0,
    block_size: int = 64,
    seed: int = 0,
) -> NormalizationConfig:
    """Measure per-band statistics on a sample of ``images`` ((N, C, H, W) array-like).

    The sample is read as random contiguous blocks of ``block_size`` objects (chunk friendly);
    statistics use a regular sub-grid of about 1,024 pixels per image and band. When the robust
    noise of a band is zero (noiseless simulations), the scale falls back to 1e-3 of the band's
    99.9th-percentile absolute signal, then to 1.
    """
    from models.data import array_length, sample_rows  # local: data imports nothing from here

    n = array_length(images)
    if n == 0:
        raise ValueError("cannot fit a normalisation on an empty image array")
    x = torch.as_tensor(sample_rows(images, sample_size, block_size=block_size, seed=seed))
    x = torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0)
    if x.ndim != 4 or x.shape[1] != len(bands):
        raise ValueError(f"images of shape {tuple(x.shape[1:])} do not match bands {list(bands)}")
    h, w = x.shape[-2:]
    step = max(1, math.ceil(math.sqrt(h * w / STAT_PIXELS)))
    grid = x[..., ::step, ::step]  # statistics on a regular sub-grid of pixels (faster)
    flat = grid.flatten(-2)
    per_image_median = flat.median(dim=-1, keepdim=True).values  # (n, C, 1)
    per_image_noise = MAD_TO_SIGMA * (flat - per_image_median).abs().median(dim=-1).values
    offset = per_image_median[..., 0].median(dim=0).values
    scale = softening * per_image_noise.median(dim=0).values
    if not bool(torch.all(scale > 0)):  # noiseless bands: 1e-3 of the bright end instead
        signal = (grid - offset[None, :, None, None]).abs().transpose(0, 1).flatten(1)
        bright = torch.quantile(signal[:, :: max(1, signal.shape[1] // 1_000_000)], 0.999, dim=1)
        scale = torch.where(scale > 0, scale, 1e-3 * bright)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    y = _transform(grid, offset[None, :, None, None], scale[None, :, None, None], method)
    y = y.transpose(0, 1).flatten(1).double()
    mean, std = y.mean(dim=1), y.std(dim=1)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return NormalizationConfig(
        bands=list(bands),
        offset=offset.tolist(),
        scale=scale.tolist(),
        mean=mean.tolist(),
        std=std.tolist(),
        method=method,
        softening=softening,
        clip=clip,
    )


class BandNormalizer(nn.Module):
    """Applies a :class:`NormalizationConfig` to (B, C, H, W) tensors; NaN/inf become 0 first."""

    def __init__(self, config: NormalizationConfig) -> None:
        super().__init__()
        self.method = config.method
        self.clip = config.clip
        self.softening = config.softening
        self.bands = list(config.bands)

        def buf(values: list[float]) -> Tensor:
            return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)

        self.register_buffer("offset", buf(config.offset))
        self.register_buffer("scale", buf(config.scale))
        self.register_buffer("mean", buf(config.mean))
        self.register_buffer("std", buf(config.std))

    @property
    def config(self) -> NormalizationConfig:
        return NormalizationConfig(
            bands=self.bands,
            offset=self.offset.flatten().tolist(),
            scale=self.scale.flatten().tolist(),
            mean=self.mean.flatten().tolist(),
            std=self.std.flatten().tolist(),
            method=self.method,
            softening=self.softening,
            clip=self.clip,
        )

    def forward(self, x: Tensor) -> Tensor:
        x = torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0)
        y = (_transform(x, self.offset, self.scale, self.method) - self.mean) / self.std
        return y.clamp(-self.clip, self.clip) if self.clip is not None else y
