"""Convolutional autoencoder: a latent embedding and a per-object reconstruction error.

Plain (deterministic) autoencoder rather than a VAE: the embedding and the anomaly score of an
object are then fixed numbers, reproducible between runs of the ranking; the bottleneck is
narrow (32 by default) so that rare morphologies reconstruct badly. Reconstructions live in the
normalised space of :class:`~models.normalize.BandNormalizer`, so every band counts alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from models.adapter import AdapterConfig
from models.augment import AugmentConfig
from models.backbone import ConvBN
from models.base import ImageModel, check_config_kind
from models.errors import InputShapeError
from models.normalize import NormalizationConfig

NOISE_SIGMAS = 2.0  # residuals below a 2-sigma noise deviation are noise (recon_excess)
CHI2_1_MEDIAN = 0.4549  # median of a chi-squared variable with one degree of freedom
RESIDUAL_SCORES = ("recon_error", "recon_peak", "recon_excess")


class _UpBlock(nn.Module):
    """Nearest-neighbour x2 upsampling then a 3x3 conv (no checkerboard artefacts)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBN(cin, cout, 3, 1, relu=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConvAutoencoder(ImageModel):
    """Encoder (strided convs -> linear latent) and mirror decoder for fixed-size cutouts."""

    kind = "autoencoder"

    def __init__(
        self,
        bands: Sequence[str],
        *,
        image_size: int | Sequence[int] = 64,
        latent_dim: int = 32,
        widths: Sequence[int] = (32, 64, 128),
        normalization: NormalizationConfig | dict | None = None,
        augment: AugmentConfig | dict | None = None,
        adapter: AdapterConfig | dict | None = None,
    ) -> None:
        super().__init__(bands, normalization, augment, adapter)
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.input_size = (int(h), int(w))  # raw cutouts
        h, w = self.adapter.output_size(int(h), int(w))  # what the network sees
        self.image_size = (int(h), int(w))
        self.latent_dim = int(latent_dim)
        self.widths = tuple(int(c) for c in widths)
        down = 2 ** len(self.widths)
        self.grid = (-(-h // down), -(-w // down))  # ceil: decoder output is cropped back
        layers: list[nn.Module] = []
        cin = self.n_input_channels
        for cout in self.widths:
            layers.append(ConvBN(cin, cout, 3, 2, relu=True))
            cin = cout
        self.encoder = nn.Sequential(*layers)
        flat = self.widths[-1] * self.grid[0] * self.grid[1]
        self.to_latent = nn.Linear(flat, self.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(self.latent_dim, flat), nn.ReLU(inplace=True))
        ups: list[nn.Module] = []
        cin = self.widths[-1]
        for cout in self.widths[::-1][1:]:
            ups.append(_UpBlock(cin, cout))
            cin = cout
        self.decoder = nn.Sequential(*ups)
        # the last x2 step goes straight to pixels (a full-resolution 3x3 conv costs 2x more)
        self.to_pixels = nn.ConvTranspose2d(cin, self.n_input_channels, 4, stride=2, padding=1)

    @property
    def embedding_dim(self) -> int:
        return self.latent_dim

    def check_input(self, x: Tensor, bands: Sequence[str] | None = None) -> None:
        super().check_input(x, bands)
        if self.adapter.output_size(*x.shape[-2:]) != self.image_size:
            raise InputShapeError(
                f"autoencoder trained on {self.input_size[0]}x{self.input_size[1]} cutouts got "
                f"{x.shape[-2]}x{x.shape[-1]}; resize the cutouts first"
            )

    def _encode_normalized(self, y: Tensor) -> Tensor:
        return self.to_latent(self.encoder(y).flatten(1))

    def encode(self, x: Tensor) -> Tensor:
        """(B, C, H, W) raw cutouts -> (B, latent_dim) embeddings."""
        self.check_input(x)
        return self._encode_normalized(self.network_input(x))

    def embed(self, x: Tensor, l2_normalize: bool = False) -> Tensor:
        """Latent embeddings for downstream use, optionally scaled to unit length."""
        z = self.encode(x)
        return F.normalize(z.float(), dim=1) if l2_normalize else z

    def decode(self, z: Tensor) -> Tensor:
        """Latents -> reconstructions in normalised units (B, C, H, W)."""
        grid = self.from_latent(z).view(-1, self.widths[-1], *self.grid)
        out = self.to_pixels(self.decoder(grid))
        return out[..., : self.image_size[0], : self.image_size[1]]

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of raw cutouts, in normalised units."""
        return self.decode(self.encode(x))

    def reconstruction_error(self, x: Tensor, per_band: bool = False) -> Tensor:
        """Mean squared error per object (N,) in normalised units; (N, C) with ``per_band``."""
        self.check_input(x)
        target = self.network_input(x)
        recon = self.decode(self._encode_normalized(target))
        err = (recon.float() - target.float()).pow(2).mean(dim=(-2, -1))
        return err if per_band else err.mean(dim=1)

    def residual_scores(self, x: Tensor) -> dict[str, Tensor]:
        """Per-object anomaly scores from the reconstruction residual ``r`` (squared, in
        normalised units): ``recon_error`` (mean of ``r``, as :meth:`reconstruction_error`),
        ``recon_peak`` (the largest ``r`` of any pixel and band) and ``recon_excess`` (the
        mean ``r`` above a :data:`NOISE_SIGMAS`-sigma noise floor per band, the floor's
        sigma^2 being the band's median ``r`` / :data:`CHI2_1_MEDIAN`). A small bright defect
        (a cosmic ray, a trail) barely moves the mean over the whole cutout but dominates
        the other two; the noise floor keeps pixel noise out of ``recon_excess``."""
        self.check_input(x)
        target = self.network_input(x)
        recon = self.decode(self._encode_normalized(target))
        r = (recon.float() - target.float()).pow(2).flatten(2)  # (N, C, H*W)
        sigma2 = r.median(dim=2, keepdim=True).values / CHI2_1_MEDIAN
        excess = (r - NOISE_SIGMAS**2 * sigma2).clamp_min(0.0)
        return {
            "recon_error": r.mean(dim=(1, 2)),
            "recon_peak": r.flatten(1).amax(dim=1),
            "recon_excess": excess.mean(dim=(1, 2)),
        }

    def training_loss(self, batch: dict[str, Tensor]) -> Tensor:
        x = batch["inputs"]
        self.check_input(x)
        target = self.network_input(x, augment=True)
        recon = self.decode(self._encode_normalized(target))
        return F.mse_loss(recon.float(), target.float())

    @property
    def config(self) -> dict[str, Any]:
        return {
            **self.base_config(),
            "image_size": list(self.input_size),
            "latent_dim": self.latent_dim,
            "embedding_dim": self.latent_dim,
            "widths": list(self.widths),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConvAutoencoder:
        c = check_config_kind(config, cls.kind)
        c.pop("embedding_dim", None)
        return cls(c.pop("bands"), **c)
