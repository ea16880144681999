"""Mixture density networks: an independent 1-D Gaussian mixture per target.

For T targets and K components the head outputs, per object and target, mixture weights
(softmax of logits), means and standard deviations (softplus + floor). Everything here works
on (N, T, K) parameter tensors in the (standardised) space the network predicts in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass
class Mixture:
    """Per-object, per-target Gaussian mixtures: tensors of shape (N, T, K)."""

    logits: Tensor
    means: Tensor
    sigmas: Tensor

    @property
    def log_weights(self) -> Tensor:
        return F.log_softmax(self.logits.float(), dim=-1)

    @property
    def weights(self) -> Tensor:
        return self.log_weights.exp()

    def log_prob(self, y: Tensor) -> Tensor:
        """log p(y) for y (N, T) -> (N, T)."""
        y = y.float()[..., None]
        mu, sigma = self.means.float(), self.sigmas.float()
        z = (y - mu) / sigma
        comp = -0.5 * z * z - sigma.log() - LOG_SQRT_2PI
        return torch.logsumexp(self.log_weights + comp, dim=-1)

    def mean(self) -> Tensor:
        """Mixture mean (N, T)."""
        return (self.weights * self.means.float()).sum(dim=-1)

    def variance(self) -> Tensor:
        """Mixture variance by the law of total variance (N, T)."""
        w, mu, sigma = self.weights, self.means.float(), self.sigmas.float()
        mean = (w * mu).sum(dim=-1, keepdim=True)
        return (w * (sigma.pow(2) + (mu - mean).pow(2))).sum(dim=-1)

    def std(self) -> Tensor:
        return self.variance().clamp_min(0.0).sqrt()

    def cdf(self, y: Tensor) -> Tensor:
        """P(Y <= y) for y (N, T) -> (N, T): the PIT value of an observed y."""
        z = (y.float()[..., None] - self.means.float()) / self.sigmas.float()
        return (self.weights * 0.5 * torch.erfc(-z / math.sqrt(2.0))).sum(dim=-1).clamp(0, 1)

    def affine(self, shift: Tensor, scale: Tensor) -> Mixture:
        """The mixture of ``shift + scale * Y`` (shift, scale broadcast over (T,))."""
        return Mixture(
            self.logits,
            shift[..., None] + scale[..., None] * self.means,
            scale[..., None] * self.sigmas,
        )


class MDNHead(nn.Module):
    """Features (N, D) -> :class:`Mixture` over ``n_targets`` with ``n_components`` each."""

    def __init__(
        self,
        in_dim: int,
        n_targets: int,
        n_components: int = 3,
        hidden: int = 128,
        min_sigma: float = 1e-3,
    ) -> None:
        super().__init__()
        self.n_targets, self.n_components = int(n_targets), int(n_components)
        self.min_sigma = float(min_sigma)
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 3 * self.n_targets * self.n_components),
        )
        with torch.no_grad():  # start with spread-out means so components do not collapse
            bias = self.net[-1].bias.view(3, self.n_targets, self.n_components)
            bias[1] = torch.linspace(-1.0, 1.0, self.n_components) if self.n_components > 1 else 0
            bias[2] = math.log(math.expm1(0.5))

    def forward(self, h: Tensor) -> Mixture:
        out = self.net(h).float().view(-1, 3, self.n_targets, self.n_components)
        sigmas = F.softplus(out[:, 2]) + self.min_sigma
        return Mixture(out[:, 0], out[:, 1], sigmas)
