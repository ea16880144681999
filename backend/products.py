"""Products of a (survey, model version): embeddings and per-object predictions.

Layout under ``$LATENTSKY_HOME/products/<survey>/<kind>-<version>/``::

    embeddings.npy        (N, D) float32, memory-mappable (written chunk by chunk)
    predictions.parquet   one row per object, in survey order

Products are immutable: each file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from backend.atomic import atomic_write
from backend.config import get_settings
from backend.errors import UserError
from backend.survey.meta import validate_survey_name


class ProductError(UserError, FileNotFoundError):
    """A product has not been computed yet (the message says how to make it)."""


def product_dir(survey: str, kind: str, version: str, root: Path | None = None) -> Path:
    root = Path(root) if root else get_settings().products_dir
    return root / validate_survey_name(survey) / f"{kind}-{version}"


def write_embeddings(
    survey: str,
    kind: str,
    version: str,
    shape: tuple[int, int],
    fill: Callable[[np.ndarray], None],
    root: Path | None = None,
    mirror: bool = False,
) -> Path:
    """Create ``embeddings.npy`` of ``shape`` and let ``fill(out)`` write it chunk by chunk
    (``embeddings_mirror.npy``, the cutouts' mirror images, with ``mirror``)."""
    path = product_dir(survey, kind, version, root) / _embeddings_file(mirror)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        fill(out)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _embeddings_file(mirror: bool) -> str:
    return "embeddings_mirror.npy" if mirror else "embeddings.npy"


def has_embeddings(
    survey: str, kind: str, version: str, root: Path | None = None, mirror: bool = False
) -> bool:
    return (product_dir(survey, kind, version, root) / _embeddings_file(mirror)).is_file()


def open_embeddings(
    survey: str, kind: str, version: str, root: Path | None = None, mirror: bool = False
) -> np.ndarray:
    """Memory-mapped (N, D) float32 embeddings (read-only); of the mirror images with
    ``mirror``."""
    path = product_dir(survey, kind, version, root) / _embeddings_file(mirror)
    if not path.is_file():
        raise ProductError(
            f"no embeddings for survey {survey!r} and {kind} {version}; "
            f"run `python -m backend embed --survey {survey}`"
        )
    return np.load(path, mmap_mode="r")


def write_predictions(
    survey: str, kind: str, version: str, table: pd.DataFrame, root: Path | None = None
) -> Path:
    path = product_dir(survey, kind, version, root) / "predictions.parquet"
    atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))
    return path


def read_predictions(
    survey: str, kind: str, version: str, root: Path | None = None
) -> pd.DataFrame:
    path = product_dir(survey, kind, version, root) / "predictions.parquet"
    if not path.is_file():
        raise ProductError(
            f"no predictions for survey {survey!r} and {kind} {version}; "
            f"run `python -m backend predict --survey {survey}`"
        )
    return pd.read_parquet(path)
