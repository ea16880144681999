"""Baseline representations an encoder must beat: pooled-pixel PCA and a random network.

- ``pixel-pca``: every cutout average-pooled to about 32x32 pixels (all bands), each pooled
  pixel standardised (mean 0, variance 1 over the survey, or over a sample of
  :data:`PCA_FIT_SAMPLE` objects for bigger surveys), then a 64-component PCA (not whitened).
- ``random-init``: the architecture of the survey's active encoder (its config, so also its
  input normalisation) when it is a SimCLR encoder, else :class:`models.SimCLREncoder` defaults
  with a normalisation fitted on the survey (foreign and imported encoders are not
  re-initialised: their networks live in files or outside LatentSky), with seeded random
  weights, embedding the survey like ``embed`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from backend.survey import Survey

PCA_COMPONENTS = 64
POOL_TARGET = 32
PCA_FIT_SAMPLE = 10_000
READ_BATCH = 512


def pool_factor(size: int, target: int = POOL_TARGET) -> int:
    """Integer pooling factor that brings ``size`` pixels closest to ``target`` (at least 1)."""
    return max(1, round(size / target))


def average_pool(images: np.ndarray, factor: int) -> np.ndarray:
    """(n, C, H, W) -> (n, C * (H // f) * (W // f)) block means (edges cropped to a multiple)."""
    n, c, h, w = images.shape
    h2, w2 = h // factor, w // factor
    x = np.asarray(images[:, :, : h2 * factor, : w2 * factor], dtype=np.float32)
    pooled = x.reshape(n, c, h2, factor, w2, factor).mean(axis=(3, 5))
    return np.nan_to_num(pooled.reshape(n, -1), nan=0.0, posinf=0.0, neginf=0.0)


def pixel_pca(
    survey: Survey,
    n_components: int = PCA_COMPONENTS,
    seed: int = 0,
    fit_sample: int = PCA_FIT_SAMPLE,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(N, n_components) float32 PCA features of the pooled, standardised pixels."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    n = len(survey)
    _, h, w = survey.image_shape
    factor = pool_factor(min(h, w))
    if n <= fit_sample:
        fit_rows = np.arange(n)
        batches = (batch for _, batch in survey.iter_batches(READ_BATCH))
    else:
        rng = np.random.default_rng(seed)
        fit_rows = np.sort(rng.choice(n, fit_sample, replace=False))
        batches = (
            survey.cutouts(fit_rows[lo : lo + READ_BATCH])
            for lo in range(0, len(fit_rows), READ_BATCH)
        )
    bar = tqdm(batches, total=-(-len(fit_rows) // READ_BATCH), desc="pixel-pca: read",
               disable=not progress, unit="batch")  # fmt: skip
    pooled = np.concatenate([average_pool(batch, factor) for batch in bar])
    n_components = int(min(n_components, pooled.shape[1], len(fit_rows)))
    scaler = StandardScaler().fit(pooled)
    pca = PCA(n_components, whiten=False, random_state=seed).fit(scaler.transform(pooled))
    if n <= fit_sample:
        features = pca.transform(scaler.transform(pooled)).astype(np.float32)
    else:
        features = np.empty((n, n_components), dtype=np.float32)
        for lo, batch in tqdm(
            survey.iter_batches(READ_BATCH), total=-(-n // READ_BATCH),
            desc="pixel-pca: project", disable=not progress, unit="batch",
        ):  # fmt: skip
            block = scaler.transform(average_pool(batch, factor))
            features[lo : lo + len(batch)] = pca.transform(block)
    info = {
        "pool_factor": factor,
        "pooled_shape": [survey.image_shape[0], h // factor, w // factor],
        "n_components": n_components,
        "fit_objects": len(fit_rows),
        "explained_variance": float(pca.explained_variance_ratio_.sum()),
    }
    return features, info


def random_encoder_config(survey: Survey, seed: int = 0) -> tuple[dict[str, Any], str]:
    """(config of the network to initialise randomly, where its architecture comes from)."""
    from backend.registry import ModelRegistry

    active = ModelRegistry().active(survey.name, "encoder")
    if active is not None and active.config.get("kind") == "simclr":
        return active.config, f"architecture of the active encoder {active.version}"
    from models import AugmentConfig, SimCLREncoder
    from models.normalize import fit_normalization

    why = (
        "no active encoder"
        if active is None
        else f"the active encoder {active.version} is a {active.config.get('kind')}"
    )
    norm = fit_normalization(survey.images, survey.bands, seed=seed)
    return (
        SimCLREncoder(survey.bands, normalization=norm, augment=AugmentConfig.none()).config,
        f"SimCLREncoder defaults ({why}), normalisation fitted on the survey",
    )


def random_init(
    survey: Survey, seed: int = 0, batch_size: int = 256, progress: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """(N, D) embeddings of the survey by a randomly initialised encoder (seeded)."""
    from backend.modelling.common import device
    from models import build_model, embed, seed_everything

    config, source = random_encoder_config(survey, seed)
    seed_everything(seed)
    model = build_model(config).eval()
    features = embed(
        model, survey.images, bands=survey.bands, batch_size=batch_size, device=device(),
        progress_bar=progress,
    )  # fmt: skip
    info = {"architecture": source, "seed": seed, "dim": int(features.shape[1])}
    return np.asarray(features, dtype=np.float32), info
