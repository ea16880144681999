"""Checkpoints: ``{config, state_dict, optimizer, extra}`` written atomically with torch.save.

The file is written to a temporary name in the same folder, flushed to disk, then renamed over
the destination with ``os.replace``: a crash leaves either the old or the new checkpoint, never
half of one. Loading uses ``torch.load(weights_only=True)``: no arbitrary pickled code runs.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.factory import build_model

FORMAT = "latentsky-checkpoint"
FORMAT_VERSION = 1


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def atomic_torch_save(payload: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the model's config and weights (and optimizer state, and plain ``extra`` data)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config,
        "state_dict": _cpu(model.state_dict()),
        "optimizer": None if optimizer is None else _cpu(optimizer.state_dict()),
        "extra": dict(extra or {}),
    }
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict (``config``, ``state_dict``, ``optimizer``, ``extra``)."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a LatentSky checkpoint")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format is newer than this LatentSky; upgrade")
    return payload


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model stored in a checkpoint, weights loaded, in eval mode."""
    payload = load_checkpoint(path, map_location)
    model = build_model(payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval()
