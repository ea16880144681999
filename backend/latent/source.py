"""Where a survey's latent products live and which encoder version they come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.latent.errors import LatentError, MissingProductError
from backend.products import product_dir
from backend.registry import ModelRegistry

ENCODER = "encoder"
MAP_FILE = "map.npy"
MAP_LANDMARKS_FILE = "map_landmarks.npz"
MAP_META_FILE = "map.json"
INDEX_FILE = "index.faiss"
INDEX_META_FILE = "index.json"
ANOMALY_FILE = "anomaly.parquet"


def resolve_encoder_version(survey: str, version: str | None = None) -> str:
    """``version`` if given, else the survey's active encoder, else its latest encoder."""
    registry = ModelRegistry()
    if version:
        return registry.get(ENCODER, version).version
    active = registry.active(survey, ENCODER)
    if active is not None:
        return active.version
    latest = registry.latest(ENCODER, survey=survey)
    if latest is None:
        raise MissingProductError(
            f"survey {survey!r} has no encoder yet; run `python -m backend prepare "
            f"--survey {survey}` to train one and embed the survey"
        )
    return latest.version


def latent_dir(survey: str, version: str) -> Path:
    """Product folder of (survey, encoder version)."""
    return product_dir(survey, ENCODER, version)


def open_embeddings(survey: str, version: str) -> np.ndarray:
    """Memory-mapped (N, D) float32 encoder embeddings of ``survey``."""
    path = latent_dir(survey, version) / "embeddings.npy"
    if not path.is_file():
        raise MissingProductError(
            f"no embeddings for survey {survey!r} with encoder {version}; run "
            f"`python -m backend prepare --survey {survey}`"
        )
    emb = np.load(path, mmap_mode="r")
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise LatentError(f"{path}: expected (N, D) float32, got {emb.shape} {emb.dtype}")
    return emb
