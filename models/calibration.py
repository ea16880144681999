"""Post-hoc calibration: temperature scaling (Guo et al. 2017), class biases, diagnostics.

Temperature scaling divides the logits by one scalar T > 0 fitted on held-out data by
minimising the negative log-likelihood (LBFGS on log T, so T stays positive). It changes the
confidence, never the predicted class.

A head trained with balanced class weights predicts as if every class were equally common; its
probabilities are then miscalibrated on the survey's real mix however T is chosen. A per-class
bias b added to logits / T (:func:`fit_temperature_and_bias`, fitted on the same held-out data,
on the MC-dropout average the head actually reports) restores the prior; the decision that
keeps the balanced recall is then argmax p(c|x) / pi(c) (:func:`balanced_decision_weights`).

The expected calibration error (ECE) is the count-weighted mean |accuracy - confidence| over
equal-width confidence bins of the top class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ArrayLike = Any  # NumPy array or torch tensor


def _np(values: ArrayLike) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def fit_temperature(logits: ArrayLike, labels: ArrayLike, max_iter: int = 200) -> float:
    """Temperature T minimising NLL(softmax(logits / T), labels) on held-out data."""
    z = torch.as_tensor(_np(logits), dtype=torch.float64)
    y = torch.as_tensor(_np(labels), dtype=torch.int64)
    keep = y >= 0
    z, y = z[keep], y[keep]
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError("need (N, K) logits and N labels (>= 0) to fit a temperature")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not np.isfinite(temperature):
        return 1.0
    return float(np.clip(temperature, 1e-2, 1e2))


def fit_temperature_and_bias(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    bias: bool = True,
    tied: list[int] | None = None,
    max_iter: int = 300,
) -> tuple[float, np.ndarray]:
    """(T, b) minimising NLL of mean_s softmax(logits_s / T + b) on held-out rows.

    ``logits``: (S, N, K) MC-dropout samples (or (N, K)); ``labels`` (N,), -1 ignored. ``tied``:
    a class permutation (a mirror's) under which b must stay invariant (b = (c + c[perm]) / 2).
    b is returned centred (softmax ignores a common shift); without ``bias`` it is zero."""
    z = torch.as_tensor(_np(logits), dtype=torch.float64)
    if z.ndim == 2:
        z = z[None]
    y = torch.as_tensor(_np(labels), dtype=torch.int64)
    keep = y >= 0
    if z.ndim != 3 or z.shape[1] != len(y) or not bool(keep.any()):
        raise ValueError("need (S, N, K) logits and N labels (>= 0) to fit a calibration")
    z, y = z[:, keep], y[keep]
    k = z.shape[2]
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    raw = torch.zeros(k, dtype=torch.float64, requires_grad=bias)
    perm = torch.as_tensor(tied if tied is not None else list(range(k)), dtype=torch.int64)

    def offsets() -> Tensor:
        return (raw + raw[perm]) / 2.0

    params = [log_t, raw] if bias else [log_t]
    optimizer = torch.optim.LBFGS(params, lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        p = torch.softmax(z / log_t.exp() + offsets(), dim=2).mean(dim=0)
        loss = F.nll_loss(p.clamp_min(1e-12).log(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    b = offsets().detach()
    if not np.isfinite(temperature) or not bool(torch.isfinite(b).all()):
        return 1.0, np.zeros(k)
    b = (b - b.mean()).numpy()
    return float(np.clip(temperature, 1e-2, 1e2)), b


def balanced_decision_weights(labels: ArrayLike, n_classes: int) -> np.ndarray:
    """1 / pi(c) of the labelled mix (normalised to mean 1): argmax p(c|x) w(c) is the
    decision with the best balanced accuracy when p is calibrated to that mix."""
    y = _np(labels).astype(np.int64)
    counts = np.bincount(y[y >= 0], minlength=n_classes).astype(np.float64)
    w = 1.0 / np.maximum(counts / max(counts.sum(), 1.0), 1e-12)
    w[counts == 0] = 0.0  # a class never seen is never decided
    return w / w[w > 0].mean()


def decide(probs: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
    """Predicted class per row: argmax of ``probs`` (N, K), each class weighted by ``weights``."""
    p = _np(probs)
    return (p if weights is None else p * np.asarray(weights)[None, :]).argmax(axis=1)


def _bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence for bins (0, 1/n], (1/n, 2/n], ... (0 goes to bin 0)."""
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def reliability_diagram(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15
) -> dict[str, np.ndarray]:
    """Per confidence bin: edges, mean confidence, accuracy and count (NaN in empty bins)."""
    p = _np(probs).astype(np.float64)
    y = _np(labels).astype(np.int64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"need (N, K) probabilities and N labels, got {p.shape} and {y.shape}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    idx = _bins(confidence, n_bins)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "bin_lower": edges[:-1],
        "bin_upper": edges[1:],
        "confidence": mean_conf,
        "accuracy": accuracy,
        "count": count,
    }


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Top-label ECE: sum over bins of (count / N) * |accuracy - mean confidence|."""
    diagram = reliability_diagram(probs, labels, n_bins)
    count = diagram["count"]
    if count.sum() == 0:
        return 0.0
    gap = np.abs(diagram["accuracy"] - diagram["confidence"])
    return float(np.nansum(gap * count) / count.sum())
