"""Where products live on disk, and how they are written so that none is ever seen half made.

Layout under ``$LATENTSKY_HOME/products/<survey>/``::

    survey/pixel_scores.parquet             pixel anomaly scores of every cutout (no model)
    <kind>-<version>/embeddings.npy         (N, D) float32, memory-mappable (encoder versions)
    <kind>-<version>/embeddings_mirror.npy  the same of the cutouts' mirror images
    <kind>-<version>/predictions.parquet    one row per object, in survey order
    encoder-<version>/map.npy, map_landmarks.npz, map.json      the 2-D map
    encoder-<version>/index.faiss, index.json                   the similarity index
    encoder-<version>/anomaly.parquet                           the anomaly scores
    evaluation/<task>/report.json, report.md, *.png             the evaluation report
    ... and beside each product ``<product>.lineage.json`` (:mod:`backend.pipeline.lineage`).

Single files are written under a temporary name and renamed into place; a product of several
files is built in a staging folder (:func:`publish`) and its files renamed in only once all of
them are written. This is the only module that knows these paths.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from backend.atomic import atomic_write, pid_alive
from backend.config import get_settings
from backend.errors import UserError
from backend.rowtable import PERCENTILES_KEY, ROW_GROUP, percentile_metadata
from backend.survey.meta import validate_survey_name

EMBEDDINGS_FILE = "embeddings.npy"
MIRROR_EMBEDDINGS_FILE = "embeddings_mirror.npy"
PREDICTIONS_FILE = "predictions.parquet"
MAP_FILE = "map.npy"
MAP_LANDMARKS_FILE = "map_landmarks.npz"
MAP_META_FILE = "map.json"
INDEX_FILE = "index.faiss"
INDEX_META_FILE = "index.json"
INDEX_DATA_FILE = "index.ivfdata"  # a compressed index's inverted lists (on disk)
ANOMALY_FILE = "anomaly.parquet"
STAGING_PREFIX = ".staging-"


class ProductError(UserError, FileNotFoundError):
    """A product has not been computed yet (the message says how to make it)."""


def products_root(survey: str, root: Path | None = None) -> Path:
    """``products/<survey>/``."""
    root = Path(root) if root else get_settings().products_dir
    return root / validate_survey_name(survey)


def product_dir(survey: str, kind: str, version: str, root: Path | None = None) -> Path:
    """Folder of the products of one (survey, model kind, version)."""
    return products_root(survey, root) / f"{kind}-{version}"


def survey_products_dir(survey: str) -> Path:
    """Folder of the products of a survey's images alone (no model): ``products/<survey>/survey/``."""
    return products_root(survey) / "survey"


def evaluation_dir(survey: str, task: str) -> Path:
    """Folder of the evaluation report of one (survey, task)."""
    return products_root(survey) / "evaluation" / task


EMBEDDING_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


def _embeddings_file(mirror: bool) -> str:
    return MIRROR_EMBEDDINGS_FILE if mirror else EMBEDDINGS_FILE


def write_embeddings(
    survey: str,
    kind: str,
    version: str,
    shape: tuple[int, int],
    fill: Callable[[np.ndarray], None],
    root: Path | None = None,
    mirror: bool = False,
    dtype: str = "float32",
) -> Path:
    """Create ``embeddings.npy`` of ``shape`` and let ``fill(out)`` write it chunk by chunk
    (``embeddings_mirror.npy``, the cutouts' mirror images, with ``mirror``); the file appears
    only once ``fill`` returned. ``dtype`` ``float16`` halves the file (surveys of 10^8
    objects); readers upcast the rows they read to float32."""
    if np.dtype(dtype) not in EMBEDDING_DTYPES:
        raise ProductError(f"embeddings are stored as float32 or float16, not {dtype}")
    path = product_dir(survey, kind, version, root) / _embeddings_file(mirror)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        out = open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=shape)
        fill(out)
        out.flush()
        del out
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def has_embeddings(
    survey: str, kind: str, version: str, root: Path | None = None, mirror: bool = False
) -> bool:
    return (product_dir(survey, kind, version, root) / _embeddings_file(mirror)).is_file()


def open_embeddings(
    survey: str,
    kind: str = "encoder",
    version: str = "",
    root: Path | None = None,
    mirror: bool = False,
) -> np.ndarray:
    """Memory-mapped (N, D) float32 (or float16: upcast the rows read) embeddings
    (read-only) of one model version; of the mirror images with ``mirror``."""
    path = product_dir(survey, kind, version, root) / _embeddings_file(mirror)
    if not path.is_file():
        raise ProductError(
            f"no embeddings for survey {survey!r} with {kind} {version}; run "
            f"`python -m backend prepare --survey {survey}` (or `python -m backend embed "
            f"--survey {survey}`)"
        )
    emb = np.load(path, mmap_mode="r")
    if emb.ndim != 2 or emb.dtype not in EMBEDDING_DTYPES:
        raise ProductError(
            f"{path}: expected (N, D) float32 or float16, got {emb.shape} {emb.dtype}"
        )
    return emb


def write_predictions(
    survey: str, kind: str, version: str, table: pd.DataFrame, root: Path | None = None
) -> Path:
    """Write a predictions table (atomically), with the 1st/99th percentiles of its emulated
    ``*_mean`` columns in the file's metadata (the details panel's ranges, never a column read)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = product_dir(survey, kind, version, root) / PREDICTIONS_FILE
    means = [c for c in table.columns if str(c).endswith("_mean")]

    def write(tmp: Path) -> None:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        meta = dict(arrow.schema.metadata or {})
        if table.attrs:  # kept as pandas' to_parquet keeps them
            meta[b"PANDAS_ATTRS"] = json.dumps(table.attrs).encode()
        meta[PERCENTILES_KEY.encode()] = percentile_metadata(table, means)
        pq.write_table(arrow.replace_schema_metadata(meta), tmp, row_group_size=ROW_GROUP)

    atomic_write(path, write)
    return path


def read_predictions(
    survey: str, kind: str, version: str, root: Path | None = None
) -> pd.DataFrame:
    path = product_dir(survey, kind, version, root) / PREDICTIONS_FILE
    if not path.is_file():
        raise ProductError(
            f"no predictions for survey {survey!r} and {kind} {version}; "
            f"run `python -m backend predict --survey {survey}`"
        )
    return pd.read_parquet(path)


@contextmanager
def publish(directory: Path, names: Sequence[str]) -> Iterator[Path]:
    """Yield a staging folder inside ``directory``; when the block ends without an error, move
    the files ``names`` written there into ``directory`` (each rename atomic). On an error, or
    when one of them is missing, nothing is moved and the staging folder is removed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        missing = [n for n in names if not (staging / n).is_file()]
        if missing:
            raise ProductError(f"{directory}: the build wrote no {', '.join(missing)}")
        for name in names:
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sweep_staging(survey: str) -> int:
    """Remove staging folders and temporary files left by builds that died (their process is
    gone); returns how many were removed."""
    base = products_root(survey)
    if not base.is_dir():
        return 0
    removed = 0
    for folder in base.iterdir():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            pid = _owner_pid(entry.name)
            if pid is None or pid_alive(pid):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _owner_pid(name: str) -> int | None:
    """The process id in a staging folder's or an embeddings temporary file's name."""
    if name.startswith(STAGING_PREFIX):
        head = name[len(STAGING_PREFIX) :].split("-", 1)[0]
    elif name.startswith(".embeddings") and name.endswith(".tmp"):
        head = name.split(".")[3] if name.count(".") >= 4 else ""
    else:
        return None
    return int(head) if head.isdigit() else None
