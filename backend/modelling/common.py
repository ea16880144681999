"""Shared helpers: survey pixels for training, model loading, version lookup, progress.

Importing this module does not import torch (the app and the job submitter use it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.config import get_settings
from backend.registry import ModelRegistry, ModelVersion, RegistryError
from backend.survey import Survey

if TYPE_CHECKING:  # torch is imported where models are built, not by importing this module
    from torch import nn

IN_MEMORY_LIMIT_BYTES = 3 * 2**30  # surveys smaller than this are read into RAM for training

Progress = Callable[[dict[str, Any]], bool | None]


def training_pixels(survey: Survey) -> Any:
    """The survey's image array: in memory when small (fast epochs), else the lazy zarr array."""
    if survey.images.nbytes <= IN_MEMORY_LIMIT_BYTES:
        return np.asarray(survey.images[:])
    return survey.images


def device() -> str:
    """Device setting for torch code (``auto`` picks CUDA when available)."""
    return get_settings().device


def load_model(version: ModelVersion) -> nn.Module:
    """Rebuild a registered model and load its weights (eval mode, CPU)."""
    from models import build_model

    model = build_model(version.config, directory=version.path)  # foreign encoders read files
    model.load_state_dict(version.load_state())
    return model.eval()


def resolve_version(
    registry: ModelRegistry, survey: str, kind: str, version: str | None = None
) -> ModelVersion:
    """An explicit version, else the survey's active one, else the latest trained on it."""
    if version:
        return registry.get(kind, version)
    found = registry.active(survey, kind) or registry.latest(kind, survey)
    if found is None:
        raise RegistryError(
            f"no {kind} model for survey {survey!r}; train one with "
            f"`python -m backend train {kind} --survey {survey}` or run "
            f"`python -m backend prepare --survey {survey}`"
        )
    return found


def check_bands(model_bands: list[str], survey: Survey) -> None:
    """Refuse a survey whose set of bands differs from the model's (order may differ)."""
    if sorted(model_bands) != sorted(survey.bands):
        from models.errors import BandMismatchError

        raise BandMismatchError(model_bands, survey.bands)


def short_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of a version's metrics (for job results and round summaries)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | None)}
