"""Attribution maps of one cutout: what the classifier, the similarity and the autoencoder
looked at (Captum's Integrated Gradients through the whole network, adapter included).

Every map is a (C, H, W) float32 array over the raw cutout's bands; :func:`energy_inside`
measures how much of a map falls in a region (the checks against the simulator's masks) and
:func:`randomized_copy` gives the model with fresh weights for the randomisation sanity check
(Adebayo et al. 2018). Pure torch: no files, no web, no database.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from torch import Tensor, nn

IG_STEPS = 16  # Riemann steps of Integrated Gradients (one batch through the network)


def _as_batch(image: np.ndarray | Tensor) -> Tensor:
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.ndim != 3:
        raise ValueError(
            f"explanations read one (bands, height, width) cutout, got {tuple(x.shape)}"
        )
    return x[None]


def _integrated_gradients(
    forward: Callable[[Tensor], Tensor], x: Tensor, steps: int, baseline: Tensor | None = None
) -> np.ndarray:
    ig = IntegratedGradients(forward)
    base = torch.zeros_like(x) if baseline is None else baseline
    attr = ig.attribute(x, baselines=base, n_steps=steps, internal_batch_size=steps)
    return attr[0].detach().float().numpy()


def embedding_rows(encoder: nn.Module, x: Tensor, mirrored: bool) -> Tensor:
    """What a classifier reads: the embedding, followed by the mirror image's when mirrored."""
    z = encoder.embed(x)
    if mirrored:
        z = torch.cat([z, encoder.embed(torch.flip(x, dims=[-1]))], dim=1)
    return z


def class_attribution(
    encoder: nn.Module,
    classifier: nn.Module,
    image: np.ndarray,
    target: int,
    steps: int = IG_STEPS,
) -> np.ndarray:
    """Integrated Gradients of class ``target``'s calibrated log-probability through encoder
    and head, from a blank (zero-flux) cutout: (C, H, W), one map per band."""
    mirrored = getattr(classifier, "mirror_permutation", None) is not None

    def forward(x: Tensor) -> Tensor:
        logits = classifier(embedding_rows(encoder, x, mirrored)).float()
        logp = (logits / classifier.temperature + classifier.class_bias).log_softmax(dim=-1)
        return logp[:, target]

    with torch.enable_grad():
        return _integrated_gradients(forward, _as_batch(image), steps)


def similarity_attribution(
    encoder: nn.Module, query: np.ndarray, neighbour: np.ndarray, steps: int = IG_STEPS
) -> np.ndarray:
    """Integrated Gradients of the cosine similarity between the query's embedding and the
    neighbour's (held fixed): which of the query's pixels make it look like the neighbour."""
    with torch.no_grad():
        other = F.normalize(encoder.embed(_as_batch(neighbour)).float(), dim=1)

    def forward(x: Tensor) -> Tensor:
        return (F.normalize(encoder.embed(x).float(), dim=1) * other).sum(dim=1)

    with torch.enable_grad():
        return _integrated_gradients(forward, _as_batch(query), steps)


def _to_raw_grid(maps: Tensor, shape: tuple[int, int]) -> Tensor:
    if tuple(maps.shape[-2:]) == tuple(shape):
        return maps
    return F.interpolate(maps, size=shape, mode="bilinear", align_corners=False)


def residual_map(autoencoder: nn.Module, image: np.ndarray) -> np.ndarray:
    """Squared reconstruction residual per pixel in the network's normalised units, on the
    cutout's grid: (C', H, W) with C' the channels the autoencoder reads."""
    x = _as_batch(image)
    with torch.no_grad():
        target = autoencoder.network_input(x)
        recon = autoencoder.decode(autoencoder._encode_normalized(target))
        res = (recon.float() - target.float()).pow(2)
    return _to_raw_grid(res, tuple(x.shape[-2:]))[0].numpy()


def anomaly_attribution(
    autoencoder: nn.Module, image: np.ndarray, steps: int = IG_STEPS
) -> np.ndarray:
    """Integrated Gradients of the reconstruction error (the autoencoder's anomaly score)
    from a blank cutout: which pixels make the object hard to reconstruct."""

    def forward(x: Tensor) -> Tensor:
        return autoencoder.reconstruction_error(x)

    with torch.enable_grad():
        return _integrated_gradients(forward, _as_batch(image), steps)


def pixel_map(attribution: np.ndarray) -> np.ndarray:
    """(H, W) magnitude of a (C, H, W) map: the sum of absolute values over bands."""
    return np.abs(np.asarray(attribution, dtype=np.float64)).sum(axis=0)


def energy_inside(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of a map's magnitude (:func:`pixel_map`; a (H, W) map is used as is) that falls
    inside the boolean (H, W) ``mask``; NaN for an all-zero map."""
    m = np.asarray(attribution, dtype=np.float64)
    m = pixel_map(m) if m.ndim == 3 else np.abs(m)
    total = float(m.sum())
    return float(m[np.asarray(mask, bool)].sum() / total) if total > 0 else float("nan")


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose learnt layers are re-initialised (normalisation buffers,
    calibration and adapter kept): the model-randomisation sanity check's reference."""
    clone = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in clone.modules():
        if module is not clone and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return clone.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps' magnitudes (:func:`pixel_map`)."""
    ra = np.argsort(np.argsort(pixel_map(a).ravel())).astype(np.float64)
    rb = np.argsort(np.argsort(pixel_map(b).ravel())).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])
