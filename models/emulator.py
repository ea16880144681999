"""Emulators: images -> photometric redshift and structural parameters with uncertainties.

A :class:`ResidualBackbone` feeds a mixture density head (:mod:`models.mdn`) that predicts an
independent Gaussian mixture for each target (e.g. ``redshift``, ``sersic_n``,
``half_light_radius``, ``ellipticity``): a full per-object posterior in one forward pass,
replacing slow template / profile fitting. Targets are standardised with statistics stored in
the config, optionally after a natural log (``"log"``) for positive quantities; means, sigmas
and PIT values come back in the original units. NaN targets (missing in the catalogue) are
ignored by the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.adapter import AdapterConfig
from models.augment import AugmentConfig
from models.backbone import BackboneConfig, ResidualBackbone
from models.base import ImageModel, backbone_config_for, check_config_kind
from models.mdn import MDNHead, Mixture
from models.normalize import NormalizationConfig

TRANSFORMS = ("identity", "log")


@dataclass
class TargetScaling:
    """Per-target transform then standardisation: ``z = (f(y) - mean) / std``."""

    names: list[str]
    mean: list[float]
    std: list[float]
    transforms: list[str]

    def __post_init__(self) -> None:
        n = len(self.names)
        if not (len(self.mean) == len(self.std) == len(self.transforms) == n) or n == 0:
            raise ValueError("target scaling needs one mean, std and transform per target")
        if any(t not in TRANSFORMS for t in self.transforms):
            raise ValueError(f"target transforms must be in {TRANSFORMS}, got {self.transforms}")
        if any(not s > 0 for s in self.std):
            raise ValueError("target std must be positive")
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]

    @classmethod
    def fit(
        cls, targets: np.ndarray, names: Sequence[str], transforms: Sequence[str] | None = None
    ) -> TargetScaling:
        """Statistics of (N, T) targets, ignoring NaN; log targets must be positive."""
        y = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
        transforms = list(transforms or ["identity"] * y.shape[1])
        if y.shape[1] != len(names) or len(transforms) != len(names):
            raise ValueError(f"{y.shape[1]} target columns for {len(names)} names / transforms")
        means, stds = [], []
        for j, t in enumerate(transforms):
            col = y[:, j][np.isfinite(y[:, j])]
            if t == "log":
                if np.any(col <= 0):
                    raise ValueError(f"target {names[j]!r} has values <= 0: cannot use 'log'")
                col = np.log(col)
            if col.size == 0:
                raise ValueError(f"target {names[j]!r} has no finite values")
            means.append(float(col.mean()))
            stds.append(float(col.std()) if col.size > 1 and col.std() > 0 else 1.0)
        return cls(list(map(str, names)), means, stds, transforms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Emulator(ImageModel):
    """Backbone + MDN head predicting per-object posteriors of ``targets`` from cutouts."""

    kind = "emulator"

    def __init__(
        self,
        bands: Sequence[str],
        targets: Sequence[str],
        *,
        target_scaling: TargetScaling | dict | None = None,
        backbone: BackboneConfig | dict | None = None,
        n_components: int = 3,
        head_hidden: int = 128,
        normalization: NormalizationConfig | dict | None = None,
        augment: AugmentConfig | dict | None = None,
        adapter: AdapterConfig | dict | None = None,
    ) -> None:
        if augment is None:  # rotation/flip invariant targets; no colour or size changes
            augment = AugmentConfig.geometric()
        super().__init__(bands, normalization, augment, adapter)
        self.targets = [str(t) for t in targets]
        if target_scaling is None:
            n = len(self.targets)
            target_scaling = TargetScaling(self.targets, [0.0] * n, [1.0] * n, ["identity"] * n)
        elif isinstance(target_scaling, dict):
            target_scaling = TargetScaling(**target_scaling)
        self.set_target_scaling(target_scaling)
        self.backbone = ResidualBackbone(backbone_config_for(backbone, self.n_input_channels))
        self.n_components, self.head_hidden = int(n_components), int(head_hidden)
        self.head = MDNHead(
            self.backbone.embedding_dim, len(self.targets), self.n_components, self.head_hidden
        )

    def set_target_scaling(self, scaling: TargetScaling) -> None:
        """Set the standardisation (call before training, e.g. with :meth:`TargetScaling.fit`)."""
        if scaling.names != self.targets:
            raise ValueError(f"scaling is for targets {scaling.names}, model has {self.targets}")
        self.scaling = scaling
        is_log = torch.tensor([t == "log" for t in scaling.transforms])
        mean, std = torch.tensor(scaling.mean), torch.tensor(scaling.std)
        if hasattr(self, "target_mean"):
            self.target_mean.copy_(mean)
            self.target_std.copy_(std)
            self.target_is_log.copy_(is_log)
        else:
            self.register_buffer("target_mean", mean)
            self.register_buffer("target_std", std)
            self.register_buffer("target_is_log", is_log)

    @classmethod
    def from_encoder(cls, encoder: ImageModel, targets: Sequence[str], **kwargs: Any) -> Emulator:
        """Start from a contrastive encoder's normalisation and backbone weights."""
        backbone = getattr(encoder, "backbone", None)
        if not isinstance(backbone, ResidualBackbone):
            raise TypeError(f"{type(encoder).__name__} has no ResidualBackbone to start from")
        kwargs.setdefault("normalization", encoder.normalizer.config)
        kwargs.setdefault("adapter", encoder.adapter.cfg)
        model = cls(encoder.bands, targets, backbone=backbone.cfg, **kwargs)
        model.backbone.load_state_dict(backbone.state_dict())
        return model

    # -- standardised space -----------------------------------------------------------------
    def forward(self, x: Tensor) -> Mixture:
        """Mixtures over the standardised targets (N, T, K)."""
        self.check_input(x)
        return self.head(self.backbone(self.network_input(x)))

    def embed(self, x: Tensor, l2_normalize: bool = False) -> Tensor:
        """Backbone features (B, embedding_dim) of raw cutouts."""
        self.check_input(x)
        h = self.backbone(self.network_input(x))
        return torch.nn.functional.normalize(h.float(), dim=1) if l2_normalize else h

    def standardize(self, y: Tensor) -> Tensor:
        y = y.float()
        y = torch.where(self.target_is_log, torch.log(y.clamp_min(1e-30)), y)
        return (y - self.target_mean) / self.target_std

    def training_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Mean negative log-likelihood of the standardised targets (NaN targets skipped)."""
        x, y = batch["inputs"], batch["targets"].float().view(len(batch["inputs"]), -1)
        self.check_input(x)
        mixture = self.head(self.backbone(self.network_input(x, augment=True)))
        z = self.standardize(y)
        valid = torch.isfinite(z)
        nll = -mixture.log_prob(torch.where(valid, z, torch.zeros_like(z)))
        return (nll * valid).sum() / valid.sum().clamp_min(1)

    # -- original units ----------------------------------------------------------------------
    def predict(self, x: Tensor) -> dict[str, Tensor]:
        """Posterior mean and standard deviation (N, T) of each target, in original units."""
        m = self(x).affine(self.target_mean, self.target_std)  # in f(y) units
        mean, std = m.mean(), m.std()
        if bool(self.target_is_log.any()):
            w, mu, s2 = m.weights.double(), m.means.double(), m.sigmas.double().pow(2)
            log_mean = (w * torch.exp(mu + 0.5 * s2)).sum(-1)  # mixture of log-normals
            log_m2 = (w * torch.exp(2 * mu + 2 * s2)).sum(-1)
            log_std = (log_m2 - log_mean.pow(2)).clamp_min(0).sqrt()
            mean = torch.where(self.target_is_log, log_mean.float(), mean)
            std = torch.where(self.target_is_log, log_std.float(), std)
        return {"mean": mean, "std": std}

    def log_prob(self, x: Tensor, y: Tensor) -> Tensor:
        """log density of observed targets y (N, T) in original units (Jacobians included)."""
        m = self(x).affine(self.target_mean, self.target_std)
        y = y.float().view(len(x), -1)
        fy = torch.where(self.target_is_log, torch.log(y.clamp_min(1e-30)), y)
        jac = torch.where(self.target_is_log, -fy, torch.zeros_like(fy))  # d log y / dy = 1/y
        return m.log_prob(fy) + jac

    def pit(self, x: Tensor, y: Tensor) -> Tensor:
        """Probability integral transform CDF(y_observed) per object and target (N, T)."""
        m = self(x).affine(self.target_mean, self.target_std)
        y = y.float().view(len(x), -1)
        return m.cdf(torch.where(self.target_is_log, torch.log(y.clamp_min(1e-30)), y))

    @property
    def config(self) -> dict[str, Any]:
        return {
            **self.base_config(),
            "targets": list(self.targets),
            "target_scaling": self.scaling.to_dict(),
            "backbone": self.backbone.cfg.to_dict(),
            "n_components": self.n_components,
            "head_hidden": self.head_hidden,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Emulator:
        c = check_config_kind(config, cls.kind)
        return cls(c.pop("bands"), c.pop("targets"), **c)


def pit_calibration(pit: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray | float]:
    """Histogram of PIT values (uniform when calibrated) and its KS distance to uniform."""
    values = np.sort(np.asarray(pit, dtype=np.float64).ravel())
    values = values[np.isfinite(values)]
    hist, edges = np.histogram(values, bins=n_bins, range=(0.0, 1.0), density=True)
    n = values.size
    ranks = np.arange(1, n + 1) / max(n, 1)
    ks = 0.0 if n == 0 else float(max(np.max(ranks - values), np.max(values - ranks + 1 / n)))
    return {"density": hist, "edges": edges, "ks": ks}
