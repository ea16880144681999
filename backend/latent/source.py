"""Which encoder version a survey's latent products come from, and where they live."""

from __future__ import annotations

from pathlib import Path

from backend.latent.errors import MissingProductError
from backend.pipeline.storage import (
    ANOMALY_FILE,
    INDEX_FILE,
    INDEX_META_FILE,
    MAP_FILE,
    MAP_LANDMARKS_FILE,
    MAP_META_FILE,
    product_dir,
)
from backend.registry import ModelRegistry

ENCODER = "encoder"
__all__ = [
    "ANOMALY_FILE",
    "ENCODER",
    "INDEX_FILE",
    "INDEX_META_FILE",
    "MAP_FILE",
    "MAP_LANDMARKS_FILE",
    "MAP_META_FILE",
    "latent_dir",
    "resolve_encoder_version",
]


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
