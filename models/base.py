"""What every image model shares: band names, input normalisation, input checks, config I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

from torch import Tensor, nn

from models.adapter import AdapterConfig, InputAdapter
from models.augment import AugmentConfig, Augmenter
from models.errors import BandMismatchError, InputShapeError
from models.normalize import BandNormalizer, NormalizationConfig

CONFIG_VERSION = 1


class ImageModel(nn.Module):
    """Base class of the networks that read (B, C, H, W) cutouts in survey flux units.

    Subclasses set ``kind``, build their layers, and implement ``config`` (a JSON-ready dict)
    and ``from_config``; ``model.load_state_dict`` then restores the weights, so a registry
    stores ``(config, state_dict)``.
    """

    kind: ClassVar[str] = "image_model"

    def __init__(
        self,
        bands: Sequence[str],
        normalization: NormalizationConfig | dict | None = None,
        augment: AugmentConfig | dict | None = None,
        adapter: AdapterConfig | dict | None = None,
    ) -> None:
        super().__init__()
        self.bands = [str(b) for b in bands]
        if not self.bands or len(set(self.bands)) != len(self.bands):
            raise ValueError(f"band names must be unique and non-empty, got {self.bands}")
        adapter_cfg = _as_adapter(adapter, self.bands)
        if adapter_cfg.bands != self.bands:
            raise BandMismatchError(self.bands, adapter_cfg.bands)
        self.adapter = InputAdapter(adapter_cfg)
        channels = adapter_cfg.channels
        norm = _as_normalization(normalization, channels)
        if norm.bands != channels:
            raise BandMismatchError(channels, norm.bands)
        self.normalizer = BandNormalizer(norm)
        aug = augment if isinstance(augment, AugmentConfig) else AugmentConfig.from_dict(augment)
        if adapter_cfg.mode == "composite" and aug.ebv_range != (0.0, 0.0):
            aug = replace(aug, ebv_range=(0.0, 0.0))  # R, G, B of a composite are not bands
        self.augmenter = Augmenter(aug, channels)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def input_channels(self) -> list[str]:
        """Channels the network reads after the adapter (the bands, or R, G, B)."""
        return self.adapter.cfg.channels

    @property
    def n_input_channels(self) -> int:
        return len(self.input_channels)

    def network_input(self, x: Tensor, augment: bool = False) -> Tensor:
        """Raw cutouts -> adapted (crop, resample, composite), optionally augmented, normalised."""
        x = self.adapter(x)
        if augment:
            x = self.augmenter(x)
        return self.normalizer(x)

    def check_input(self, x: Tensor, bands: Sequence[str] | None = None) -> None:
        """Raise a clear error unless ``x`` is (B, n_bands, H, W) with the model's bands."""
        if x.ndim != 4:
            raise InputShapeError(
                f"{self.kind} expects (batch, bands, height, width) images, got shape "
                f"{tuple(x.shape)}"
            )
        if bands is not None and [str(b) for b in bands] != self.bands:
            raise BandMismatchError(self.bands, bands)
        if x.shape[1] != self.n_bands:
            raise BandMismatchError(self.bands, int(x.shape[1]))

    def base_config(self) -> dict[str, Any]:
        """Fields every image model's config has."""
        return {
            "kind": self.kind,
            "config_version": CONFIG_VERSION,
            "bands": list(self.bands),
            "normalization": self.normalizer.config.to_dict(),
            "augment": self.augmenter.config,
            "adapter": self.adapter.cfg.to_dict(),
        }

    @property
    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImageModel:  # pragma: no cover - abstract
        raise NotImplementedError


def _as_normalization(
    value: NormalizationConfig | dict | None, bands: list[str]
) -> NormalizationConfig:
    if value is None:
        return NormalizationConfig.identity(bands)
    if isinstance(value, NormalizationConfig):
        return value
    return NormalizationConfig.from_dict(value)


def _as_adapter(value: AdapterConfig | dict | None, bands: list[str]) -> AdapterConfig:
    if value is None:
        return AdapterConfig.identity(bands)
    if isinstance(value, AdapterConfig):
        return value
    return AdapterConfig.from_dict(value)


def check_config_kind(config: dict[str, Any], kind: str) -> dict[str, Any]:
    """Validate the ``kind`` and version of a stored config and return a copy without them."""
    if config.get("kind") != kind:
        raise ValueError(f"config is for a {config.get('kind')!r} model, not {kind!r}")
    version = int(config.get("config_version", CONFIG_VERSION))
    if version > CONFIG_VERSION:
        raise ValueError(
            f"model config version {version} is newer than this LatentSky understands "
            f"({CONFIG_VERSION}); upgrade LatentSky"
        )
    return {k: v for k, v in config.items() if k not in ("kind", "config_version")}


def backbone_config_for(value: Any, n_bands: int) -> Any:
    """A :class:`BackboneConfig` from a config/dict/None, with ``in_channels`` set to the bands."""
    from dataclasses import replace

    from models.backbone import BackboneConfig

    if value is None:
        value = BackboneConfig()
    elif isinstance(value, dict):
        value = BackboneConfig.from_dict(value)
    return replace(value, in_channels=n_bands)
