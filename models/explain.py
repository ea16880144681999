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

from models.autoencoder import CHI2_1_MEDIAN, NOISE_SIGMAS  # one noise floor for scores and maps

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


def excess_residual(residual: np.ndarray, sigmas: float = NOISE_SIGMAS) -> np.ndarray:
    """The residual energy above the noise: ``max(r - floor, 0)`` per band, with ``floor`` the
    squared residual of a ``sigmas``-sigma noise deviation. A band's noise scale comes from its
    median squared residual (for Gaussian noise the median of ``r`` is 0.455 sigma^2), so the
    pixel noise no autoencoder can reconstruct does not count as the object's residual."""
    r = np.asarray(residual, dtype=np.float64)
    sigma2 = np.median(r, axis=(-2, -1), keepdims=True) / CHI2_1_MEDIAN
    return np.maximum(r - sigmas**2 * sigma2, 0.0)


def normal_version(autoencoder: nn.Module, x: Tensor) -> Tensor | None:
    """The autoencoder's reconstruction in the cutout's flux units (its idea of the ordinary
    object), or None when its input adapter crops, resamples or mixes bands (no inverse)."""
    adapter, norm = autoencoder.adapter, autoencoder.normalizer
    h, w = x.shape[-2:]
    if adapter.cfg.mode != "bands" or tuple(adapter.output_size(h, w)) != (h, w):
        return None
    with torch.no_grad():
        y = autoencoder.decode(autoencoder._encode_normalized(autoencoder.network_input(x)))
        t = y.float() * norm.std + norm.mean
        t = torch.sinh(t) if norm.method == "asinh" else t
        return t * norm.scale + norm.offset


def _residual_and_floor(autoencoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Squared residual (1, C', h, w, float64) in network units and each band's noise floor (1, C'),
    the floor :func:`excess_residual` applies to the same residual."""
    with torch.no_grad():
        target = autoencoder.network_input(x)
        res = (autoencoder.decode(autoencoder._encode_normalized(target)) - target).pow(2)
        median = res.double().flatten(-2).quantile(0.5, dim=-1)  # as excess_residual's
        floor = NOISE_SIGMAS**2 * median / CHI2_1_MEDIAN
    return res.double(), floor


def ordinary_baseline(
    autoencoder: nn.Module, x: Tensor, residual: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """The object with its departures removed: the autoencoder's reconstruction (in flux units)
    where a pixel's residual is above the band's noise floor, the cutout itself elsewhere; a
    blank cutout when the reconstruction cannot be mapped back to fluxes. Pixels the
    autoencoder reproduces within the noise are already ordinary, so Integrated Gradients from
    this baseline gives them nothing: from the plain reconstruction, the path moves every pixel
    by its sky noise (which no autoencoder reconstructs) and a long trail's residual, coupled to
    every pixel through the decoder, spreads attribution over the whole cutout. ``residual``:
    the (residual, floor) pair of ``x`` when already computed."""
    recon = normal_version(autoencoder, x)
    if recon is None:
        return torch.zeros_like(x)
    res, floor = residual if residual is not None else _residual_and_floor(autoencoder, x)
    return torch.where(res > floor[..., None, None], recon, x)


def anomaly_attribution(
    autoencoder: nn.Module, image: np.ndarray, steps: int = IG_STEPS
) -> np.ndarray:
    """Integrated Gradients of the object's residual energy above the noise (the
    reconstruction error that :func:`excess_residual` keeps, its noise floor held fixed) from
    :func:`ordinary_baseline`: which departures from the ordinary version make it anomalous."""
    x = _as_batch(image)
    res, floor = _residual_and_floor(autoencoder, x)

    def forward(batch: Tensor) -> Tensor:
        y = autoencoder.network_input(batch)
        r = (autoencoder.decode(autoencoder._encode_normalized(y)) - y).float().pow(2)
        return torch.relu(r - floor[..., None, None].float()).flatten(1).sum(dim=1)

    with torch.enable_grad():
        baseline = ordinary_baseline(autoencoder, x, (res, floor))
        return _integrated_gradients(forward, x, steps, baseline)


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
    """Spearman rank correlation of two maps' magnitudes (:func:`pixel_map`); 0 when either
    map is constant (an all-zero map ranks nothing)."""
    from scipy.stats import rankdata

    ma, mb = pixel_map(a).ravel(), pixel_map(b).ravel()
    if np.ptp(ma) == 0 or np.ptp(mb) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(ma), rankdata(mb))[0, 1])
