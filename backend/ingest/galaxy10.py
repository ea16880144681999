"""``ingest galaxy10``: the Galaxy10 DECaLS HDF5 file -> survey, read in chunks with h5py.

The file holds ``images`` (N, 256, 256, 3) uint8 colour pictures, ``ans`` (class index),
``ra``, ``dec``, ``redshift`` and ``pxscale`` (arcsec/pixel). The real file is 2.5 GB, so
images are read ``chunk_size`` rows at a time and never loaded whole, per partition of rows
where ``--scheduler`` says (:mod:`backend.pipeline.execution`). Class indices become
names in a ``label`` column (``label_id`` keeps the number); every other one-dimensional
per-object dataset becomes a catalog column too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from backend.ingest.crossmatch import catalog_join
from backend.ingest.pipeline import Batch, check_target, partition_rows, write_survey
from backend.ingest.report import IngestError, IngestReport, Skipped
from backend.ingest.resize import resample

CLASS_NAMES = [
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
]
BANDS = ["R", "G", "B"]
DEFAULT_CHUNK = 256  # rows per read: 256 x 256 x 256 x 3 bytes = 48 MiB


def ingest_galaxy10(
    path: str | Path,
    survey: str,
    *,
    size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    catalog: str | Path | None = None,
    id_column: str | None = None,
    match_radius: float | None = None,
    ra_column: str | None = None,
    dec_column: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    root: Path | None = None,
    progress: bool = True,
    description: str = "",
    scheduler: Any = None,
) -> IngestReport:
    """Ingest a Galaxy10 DECaLS-format HDF5 file; ``size`` downsamples (e.g. 64 or 128).

    The pictures are read ``chunk_size`` rows at a time, per partition of rows where
    ``scheduler`` says; the survey is the same wherever they are read.
    """
    if size is not None and size < 2:
        raise IngestError(f"--size {size}: must be at least 2 pixels")
    if chunk_size < 1:
        raise IngestError(f"chunk size {chunk_size}: must be at least 1")
    check_target(survey, overwrite, root)
    file = Path(path).expanduser()
    if not file.is_file():
        raise IngestError(f"{file}: no such file")
    if not h5py.is_hdf5(file):
        raise IngestError(f"{file}: not an HDF5 file (Galaxy10 DECaLS comes as Galaxy10_DECals.h5)")
    join = catalog_join(catalog, id_column, match_radius, ra_column, dec_column)
    try:
        h5 = h5py.File(file, "r")
    except OSError as exc:
        raise IngestError(f"{file}: cannot open the HDF5 file ({exc})") from exc
    with h5:
        images = _images_dataset(h5, file)
        n_rows, height, width = images.shape[0], images.shape[1], images.shape[2]
        n = n_rows if limit is None else min(n_rows, max(limit, 0))
        shape = (size, size) if size else (height, width)
        columns = _columns(h5, n_rows, file)
        report = IngestReport(
            survey=survey,
            kind="galaxy10",
            source=str(file),
            options={"size": size, "chunk_size": chunk_size},
        )
        pxscale = columns.get("pxscale")
        scale = None
        if pxscale is not None and np.isfinite(pxscale[:n]).any():
            scale = float(np.nanmedian(pxscale[:n])) * width / shape[1]
        return write_survey(
            _chunks(file, images, columns, n, shape, chunk_size, scheduler),
            report,
            bands=BANDS,
            image_shape=shape,
            total=n,
            unit="row",
            join=join,
            pixel_scale=scale,
            description=description or f"Galaxy10 DECaLS from {file.name}",
            overwrite=overwrite,
            root=root,
            limit=limit,
            progress=progress,
        )


def _images_dataset(h5: h5py.File, file: Path) -> h5py.Dataset:
    if "images" not in h5 or not isinstance(h5["images"], h5py.Dataset):
        raise IngestError(
            f"{file}: no 'images' dataset (found: {', '.join(h5.keys()) or 'nothing'}); "
            "expected the Galaxy10 DECaLS layout"
        )
    images = h5["images"]
    if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[1:3]) < 2:
        raise IngestError(
            f"{file}: 'images' has shape {images.shape}; expected (N, H, W, 3) colour pictures"
        )
    if images.shape[0] == 0:
        raise IngestError(f"{file}: 'images' holds no pictures")
    if not np.issubdtype(images.dtype, np.number):
        raise IngestError(f"{file}: 'images' has non-numeric type {images.dtype}")
    return images


def _columns(h5: h5py.File, n_rows: int, file: Path) -> dict[str, np.ndarray]:
    """Every 1-D numeric dataset with one value per picture (small: read whole)."""
    columns = {}
    for name, ds in h5.items():
        if name == "images" or not isinstance(ds, h5py.Dataset):
            continue
        if ds.ndim == 1 and ds.shape[0] == n_rows and np.issubdtype(ds.dtype, np.number):
            columns[name] = ds[()]
    for name in ("ra", "dec"):
        if name in columns:
            columns[name] = columns[name].astype(float)
    return columns


def _labels(answers: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    ids = np.asarray(answers)
    names = [
        CLASS_NAMES[int(a)]
        if np.isfinite(a) and 0 <= a < len(CLASS_NAMES) and a == int(a)
        else None
        for a in ids.astype(float)
    ]
    return ids, names


def _chunks(
    file: Path,
    images: h5py.Dataset,
    columns: dict[str, np.ndarray],
    n: int,
    shape: tuple[int, int],
    chunk_size: int,
    scheduler: Any = None,
) -> Iterator[Batch | Skipped]:
    """The first ``n`` rows, in order: partitions of whole chunks of rows (about
    :data:`~backend.ingest.pipeline.PARTITION_BYTES` of output pixels each) read where
    ``scheduler`` says (:mod:`backend.pipeline.execution`; the workers must see the file)."""
    from backend.pipeline.execution import executor, partitions

    rows = partition_rows(4 * 3 * shape[0] * shape[1], at_least=chunk_size)
    parts = [
        (lo, hi, {name: values[lo:hi] for name, values in columns.items()})
        for lo, hi in partitions(n, rows)
    ]
    task = RowsPartition(file.resolve(), images.name, images.dtype == np.uint8, shape, chunk_size)
    with executor(scheduler) as ex:
        for items in ex.imap(task, parts):
            yield from items


@dataclass(frozen=True)
class RowsPartition:
    """Rows ``[lo, hi)`` of the HDF5 file's images, read ``chunk_size`` rows at a time, as
    :class:`Batch` items with their catalog rows (or :class:`Skipped` for unreadable rows)."""

    file: Path
    dataset: str
    uint8: bool
    shape: tuple[int, int]
    chunk_size: int

    def __call__(self, part: tuple[int, int, dict[str, np.ndarray]]) -> list[Batch | Skipped]:
        lo, hi, columns = part
        with h5py.File(self.file, "r") as h5:
            images = h5[self.dataset]
            return [
                item
                for start in range(lo, hi, self.chunk_size)
                for item in self._chunk(
                    images, columns, lo, start, min(hi, start + self.chunk_size)
                )
            ]

    def _chunk(
        self,
        images: h5py.Dataset,
        columns: dict[str, np.ndarray],
        first: int,
        lo: int,
        hi: int,
    ) -> list[Batch | Skipped]:
        try:
            block = images[lo:hi]  # (n, H, W, 3): one chunk, never the whole file
        except Exception as exc:  # a corrupt region skips its rows, not the ingestion
            return [Skipped(f"row {i}", f"cannot read the pixels ({exc})") for i in range(lo, hi)]
        pixels = np.ascontiguousarray(block.transpose(0, 3, 1, 2), dtype=np.float32)
        if self.uint8:
            pixels /= 255.0
        pixels = resample(pixels, self.shape)
        rows = pd.DataFrame({"object_id": [f"g10-{i:05d}" for i in range(lo, hi)]})
        rows["h5_index"] = np.arange(lo, hi)
        for name, values in columns.items():
            if name == "ans":
                rows["label_id"], rows["label"] = _labels(values[lo - first : hi - first])
            else:
                rows[name] = values[lo - first : hi - first]
        return [Batch(pixels, rows, n_inputs=hi - lo)]
