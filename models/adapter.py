"""Input adapters: a survey's raw cutouts -> the encoder's native input (size and channels).

Every image model declares what its network reads (:class:`AdapterConfig`): the survey bands it
takes, a centre crop and a native side in pixels, and how bands become the network's channels:

- ``bands``: the bands themselves (per-band input), in the declared order;
- ``composite``: an RGB colour composite made from three of the bands with the Lupton et al.
  (2004) asinh mapping (as ``astropy.visualization.make_lupton_rgb``, values in [0, 1]), so an
  encoder pretrained on composites reads any survey whatever its filters.

Crop and resampling come first (area averaging when shrinking, bilinear when enlarging), so a
survey of 424-pixel cutouts costs the network no more per step than one of 64 pixels. Adapters
have no weights: changing a model's adapter (e.g. a general encoder taken to a new survey) keeps
its weights valid as long as the output channels mean the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

COMPOSITE_CHANNELS = ("R", "G", "B")
MODES = ("bands", "composite")


@dataclass
class AdapterConfig:
    """How raw cutouts in ``bands`` become the network's input.

    bands: survey bands read (the model's ``bands``), in input order.
    mode: ``bands`` (channels = bands) or ``composite`` (channels R, G, B).
    size: native side in pixels after crop and resampling (None: keep the cutout's size).
    crop: centre crop in pixels applied first (None: no crop).
    rgb_bands: composite only: the bands shown as red, green, blue.
    band_scales: composite only: multipliers per band before the mapping.
    stretch, q, minimum: composite only: Lupton mapping parameters (survey flux units).
    """

    bands: list[str]
    mode: str = "bands"
    size: int | None = None
    crop: int | None = None
    rgb_bands: list[str] = field(default_factory=list)
    band_scales: dict[str, float] = field(default_factory=dict)
    stretch: float = 1.0
    q: float = 8.0
    minimum: float = 0.0

    def __post_init__(self) -> None:
        self.bands = [str(b) for b in self.bands]
        if not self.bands or len(set(self.bands)) != len(self.bands):
            raise ValueError(f"adapter bands must be unique and non-empty, got {self.bands}")
        if self.mode not in MODES:
            raise ValueError(f"adapter mode {self.mode!r}: use one of {', '.join(MODES)}")
        for name in ("size", "crop"):
            value = getattr(self, name)
            if value is not None and int(value) < 4:
                raise ValueError(f"adapter {name} must be at least 4 pixels, got {value}")
        if self.mode == "composite":
            if len(self.rgb_bands) != 3 or any(b not in self.bands for b in self.rgb_bands):
                raise ValueError(
                    f"a composite needs three of the bands {self.bands} as rgb_bands, "
                    f"got {self.rgb_bands}"
                )
            if not self.stretch > 0:
                raise ValueError(f"composite stretch must be positive, got {self.stretch}")

    @property
    def channels(self) -> list[str]:
        """Names of the network's input channels."""
        return list(COMPOSITE_CHANNELS) if self.mode == "composite" else list(self.bands)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown adapter parameters: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def identity(cls, bands: Sequence[str]) -> AdapterConfig:
        return cls(bands=list(bands))

    @property
    def is_identity(self) -> bool:
        return self.mode == "bands" and self.size is None and self.crop is None


def centre_crop(x: Tensor, side: int) -> Tensor:
    """The central ``side`` x ``side`` pixels (the whole image when it is smaller)."""
    h, w = x.shape[-2:]
    top, left = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return x[..., top : top + min(side, h), left : left + min(side, w)]


def resample(x: Tensor, side: int) -> Tensor:
    """Resize (B, C, H, W) to ``side`` x ``side``: area average when shrinking, else bilinear."""
    h, w = x.shape[-2:]
    if (h, w) == (side, side):
        return x
    if h >= side and w >= side:
        if h % side == 0 and w % side == 0:
            return F.avg_pool2d(x, (h // side, w // side))
        return F.interpolate(x, size=(side, side), mode="area")
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


def lupton_composite(rgb: Tensor, *, stretch: float, q: float, minimum: float = 0.0) -> Tensor:
    """(B, 3, H, W) fluxes (red, green, blue) -> colours in [0, 1] (Lupton et al. 2004).

    The same mapping as ``astropy.visualization.make_lupton_rgb`` (divided by 255): intensity
    I = mean of the three, each channel scaled by asinh(Q I / stretch) * slope / I, then pixels
    brighter than 1 in any channel scaled down to keep their colour.
    """
    x = rgb.float() - minimum
    q = max(float(q), 1.0 / 2**23)
    slope = 0.1 / math.asinh(0.1 * q)
    intensity = x.mean(dim=1, keepdim=True)
    factor = torch.where(
        intensity > 0,
        torch.asinh(intensity * (q / stretch)) * slope / intensity.clamp_min(1e-30),
        torch.zeros_like(intensity),
    )
    out = (x * factor).clamp_min(0.0)  # single bands can be below the sky
    peak = out.amax(dim=1, keepdim=True)
    out = torch.where(peak > 1.0, out / peak.clamp_min(1e-30), out)
    return out.clamp(0.0, 1.0)


class InputAdapter(nn.Module):
    """Applies an :class:`AdapterConfig` to raw cutouts (no weights)."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.cfg = config
        bands = config.bands
        self._rgb = [bands.index(b) for b in config.rgb_bands]
        scales = [float(config.band_scales.get(b, 1.0)) for b in config.rgb_bands]
        self.register_buffer(
            "rgb_scales", torch.tensor(scales or [1.0], dtype=torch.float32), persistent=False
        )

    @property
    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the network sees for a cutout of (height, width)."""
        if self.cfg.crop:
            height, width = min(height, self.cfg.crop), min(width, self.cfg.crop)
        if self.cfg.size:
            return self.cfg.size, self.cfg.size
        return height, width

    def forward(self, x: Tensor) -> Tensor:
        if self.cfg.crop:
            x = centre_crop(x, int(self.cfg.crop))
        if self.cfg.size:
            x = resample(x, int(self.cfg.size))
        if self.cfg.mode == "composite":
            rgb = x[:, self._rgb] * self.rgb_scales.to(x.dtype)[None, :, None, None]
            x = lupton_composite(
                rgb, stretch=self.cfg.stretch, q=self.cfg.q, minimum=self.cfg.minimum
            ).to(x.dtype)
        return x
