"""Monte Carlo dropout (Gal & Ghahramani 2016) and the BALD acquisition score (Houlsby 2011).

With T stochastic forward passes p_t(y|x) (dropout on, everything else in eval mode):

* predictive probabilities  p(y|x) = mean_t p_t(y|x)
* predictive entropy        H[p]  (total uncertainty)
* BALD mutual information   I = H[mean_t p_t] - mean_t H[p_t] = mean_t KL(p_t || p) >= 0
  (the part of the uncertainty that comes from the model, i.e. what a label would teach).

Entropies are in nats, computed in float64 with probabilities clamped away from 0; BALD is
computed as a mean of KL divergences and clamped at 0, so it is never negative.

The classifiers use *consistent* MC dropout (Kirsch et al. 2019, BatchBALD): sample t draws one
dropout mask shared by every object, i.e. one weight sample θ_t applied to the whole survey,
from a seeded generator. Scores are then reproducible from run to run and chunk to chunk, and
no per-element random numbers are drawn (30 samples over 1M embeddings take seconds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

EPS = 1e-12


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode with only the dropout layers sampling; restores the modes on exit."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.train(mode)


def entropy(probs: Tensor, dim: int = -1) -> Tensor:
    """Shannon entropy (nats) along ``dim``, float64."""
    p = probs.double().clamp(EPS, 1.0)
    return -(probs.double() * p.log()).sum(dim=dim)


def _mean_and_bald(samples: Tensor) -> tuple[Tensor, Tensor]:
    p = samples.double().contiguous()
    mean = p.mean(dim=0)
    kl = (p * (p.clamp(EPS, 1.0).log() - mean.clamp(EPS, 1.0).log())).sum(dim=-1)
    return mean, kl.mean(dim=0).clamp_min(0.0)


def mutual_information(samples: Tensor) -> Tensor:
    """BALD from MC samples (T, N, K) of probabilities -> (N,), float64, >= 0."""
    return _mean_and_bald(samples)[1]


@dataclass
class MCPrediction:
    """Result of MC dropout over N objects and K classes (float32 tensors on the CPU)."""

    probs: Tensor  # (N, K) mean predictive probabilities
    entropy: Tensor  # (N,) predictive entropy, nats
    bald: Tensor  # (N,) mutual information between label and weights, nats, >= 0
    samples: Tensor | None = None  # (T, N, K) when requested

    def as_numpy(self) -> dict[str, np.ndarray]:
        return {
            "probs": self.probs.numpy(),
            "entropy": self.entropy.numpy(),
            "bald": self.bald.numpy(),
        }


def summarize_samples(samples: Tensor, keep_samples: bool = False) -> MCPrediction:
    """Mean probabilities, predictive entropy and BALD from (T, N, K) probability samples."""
    mean, bald = _mean_and_bald(samples)
    return MCPrediction(
        probs=mean.float().cpu(),
        entropy=entropy(mean).float().cpu(),
        bald=bald.float().cpu(),
        samples=samples.float().cpu() if keep_samples else None,
    )


@torch.no_grad()
def consistent_mc_logits(
    layers: nn.Sequential, x: Tensor, n_samples: int = 30, seed: int = 0
) -> Tensor:
    """(T, N, K) outputs of a flat ``Sequential`` (dropout, linear and element-wise layers)
    with one dropout mask per sample shared by all N rows, from a generator seeded with
    ``seed``. A mask followed by a linear layer is folded into T masked weight matrices, so
    all samples run as one batched matrix product."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    modules = list(layers)
    h, per_sample = x, False  # h is (N, ...) until the first mask, then (T, N, ...)
    i = 0
    while i < len(modules):
        layer = modules[i]
        if isinstance(layer, nn.Dropout) and layer.p > 0:
            keep = torch.rand(n_samples, 1, h.shape[-1], generator=generator, device=h.device)
            mask = (keep >= layer.p).to(h.dtype) / (1.0 - layer.p)  # (T, 1, H)
            nxt = modules[i + 1] if i + 1 < len(modules) else None
            if isinstance(nxt, nn.Linear):
                weight = nxt.weight[None] * mask  # (T, out, H): input column h scaled by mask
                if per_sample:
                    h = torch.bmm(h, weight.transpose(1, 2))
                else:  # one GEMM for all samples: (N, H) @ (H, T * out)
                    n, out = h.shape[0], nxt.out_features
                    h = (h @ weight.reshape(-1, h.shape[-1]).T).view(n, n_samples, out)
                    h = h.transpose(0, 1)
                h = h + nxt.bias if nxt.bias is not None else h
                per_sample, i = True, i + 2
                continue
            h, per_sample = h * mask if per_sample else h[None] * mask, True
        elif not isinstance(layer, nn.Dropout):
            h = layer(h)
        i += 1
    if not per_sample:
        h = h[None].expand(n_samples, *h.shape)
    return h.contiguous()


@torch.no_grad()
def mc_dropout_predict(
    model: nn.Module,
    logits_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    n_samples: int = 30,
    temperature: float = 1.0,
    keep_samples: bool = False,
) -> MCPrediction:
    """T stochastic passes of ``logits_fn`` with ``model``'s dropout on; softmax(logits / T).

    ``n_samples=0`` or a model without dropout gives a deterministic prediction (BALD = 0).
    """
    if n_samples < 1:
        was_training = model.training
        model.eval()
        try:
            logits = logits_fn(x).float() / temperature
        finally:
            model.train(was_training)
        return summarize_samples(logits.softmax(dim=-1)[None], keep_samples)
    with mc_dropout_mode(model):
        samples = torch.stack(
            [(logits_fn(x).float() / temperature).softmax(dim=-1) for _ in range(n_samples)]
        )
    return summarize_samples(samples, keep_samples)
