"""``ingest hats DIR --survey NAME``: a HATS catalog with cutouts -> survey.

The catalog is opened with ``hats.read_hats`` (a catalog folder, or a collection whose main
catalog is used) and its partitions are read in HEALPix order. Each row names its cutout with
two columns: ``cutout_file``, a zarr array (n, C, H, W) relative to the catalog folder (the
main catalog's, in a collection; or ``--images DIR``), and ``cutout_row``, its row there; the layout ``export --format hats``
writes (:mod:`backend.hats`). A catalog without those columns is refused: a survey is images.
The catalog columns are read here; the cutouts are gathered per partition of objects (about
:data:`~backend.ingest.pipeline.PARTITION_BYTES` of pixels each) where ``--scheduler`` says
(:mod:`backend.pipeline.execution`), and the survey is the same wherever they are gathered.

A LatentSky export also carries ``latentsky.json`` (bands, display, pixel scale, which columns
were the catalog and which were model products) and ``survey_index``: then the survey comes back
as it was exported (same objects, order, catalog columns and pixels) without the product
columns; a subset of an export keeps the survey's order. Any other catalog keeps all its columns, in HEALPix order, with bands named by the
cutout arrays' ``bands`` attribute (else ``b0``, ``b1``...).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import zarr

from backend.hats.layout import (
    CUTOUT_FILE_COLUMN,
    CUTOUT_ROW_COLUMN,
    SIDECAR_FILE,
    SIDECAR_FORMAT,
    SURVEY_INDEX_COLUMN,
    HatsError,
    cutout_path,
)
from backend.ingest.pipeline import Batch, check_target, partition_rows, write_survey
from backend.ingest.report import IngestError, IngestReport
from backend.survey.meta import DisplaySettings

_SPATIAL_INDEX = "_healpix_29"


def ingest_hats(
    path: str | Path,
    survey: str,
    *,
    images: str | Path | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    root: Path | None = None,
    progress: bool = True,
    description: str = "",
    scheduler: Any = None,
) -> IngestReport:
    """Ingest the HATS catalog at ``path`` with its cutouts (under ``images``, default
    ``path``) as survey ``survey``. The catalog is read here; the cutouts are gathered per
    partition of objects where ``scheduler`` says."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such folder")
    if not path.is_dir():
        raise IngestError(f"{path}: not a folder (a HATS catalog is a folder)")
    check_target(survey, overwrite, root)
    catalog = _open_catalog(path)
    base = Path(catalog.catalog_base_dir.path)  # the main catalog's folder in a collection
    sidecar = _read_sidecar(base)
    names = list(catalog.schema.names) if catalog.schema is not None else []
    missing = [c for c in (CUTOUT_FILE_COLUMN, CUTOUT_ROW_COLUMN) if c not in names]
    if missing:
        raise IngestError(
            f"{path}: HATS catalog {catalog.catalog_name!r} has no cutouts (no "
            f"{' / '.join(repr(c) for c in missing)} column); a survey needs an image per "
            "object: export one with `python -m backend export --format hats`, or ingest the "
            "images with `ingest fits|images` and join this catalog with --catalog"
        )
    image_root = Path(images) if images is not None else base
    if not image_root.is_dir():
        raise IngestError(f"{image_root}: no such folder of cutouts (--images)")
    info = catalog.catalog_info
    table = _read_table(catalog, path, _wanted(names, sidecar, info.ra_column, info.dec_column))
    notes: list[str] = []
    table = _survey_order(table, notes)
    refs = table[[CUTOUT_FILE_COLUMN, CUTOUT_ROW_COLUMN]]
    arrays = _CutoutArrays(image_root)
    bands, shape = _bands_and_shape(sidecar, arrays, refs, path)
    rows = table.drop(columns=[c for c in _INTERNAL if c in table.columns])
    rows = rows.rename(columns={info.ra_column: "ra", info.dec_column: "dec"})
    survey_meta = (sidecar or {}).get("survey", {})
    display = survey_meta.get("display")
    report = IngestReport(
        survey=survey,
        kind="hats",
        source=str(path),
        options={"images": str(image_root), "catalog": catalog.catalog_name},
        notes=notes,
    )
    step = partition_rows(4 * int(np.prod(shape)))
    return write_survey(
        _batches(rows, refs, image_root, shape, step, scheduler),
        report,
        bands=bands,
        image_shape=(shape[1], shape[2]),
        total=len(rows),
        unit="object",
        pixel_scale=survey_meta.get("pixel_scale"),
        display=DisplaySettings(**display) if isinstance(display, dict) else None,
        description=description or survey_meta.get("description", ""),
        overwrite=overwrite,
        root=root,
        limit=limit,
        progress=progress,
        batch_size=step,
    )


_INTERNAL = (_SPATIAL_INDEX, SURVEY_INDEX_COLUMN, CUTOUT_FILE_COLUMN, CUTOUT_ROW_COLUMN)


def _open_catalog(path: Path) -> Any:
    import hats
    from hats.catalog import CatalogType

    try:
        found = hats.read_hats(path)
    except Exception as exc:  # hats raises FileNotFoundError, ValueError, pydantic errors...
        raise IngestError(f"{path}: not a HATS catalog ({_first_line(exc)})") from exc
    catalog = getattr(found, "main_catalog", found)  # a collection: its main catalog
    kind = getattr(catalog.catalog_info, "catalog_type", None)
    if kind not in (CatalogType.OBJECT, CatalogType.SOURCE):
        raise IngestError(f"{path}: a HATS {kind} catalog, not an object or source catalog")
    return catalog


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    file = path / SIDECAR_FILE
    if not file.is_file():
        return None
    try:
        sidecar = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise IngestError(f"{file}: unreadable ({exc})") from exc
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise IngestError(f"{file}: not a LatentSky export description")
    return sidecar


def _wanted(
    names: list[str], sidecar: dict[str, Any] | None, ra: str | None, dec: str | None
) -> list[str]:
    """Columns to read: the exported catalog's (a LatentSky export), else every column."""
    needed = [c for c in (ra, dec) if c]
    if sidecar is None:
        columns = [c for c in names if c != _SPATIAL_INDEX]
    else:
        catalog_columns = [c for c in sidecar.get("catalog_columns", []) if c in names]
        extra = [SURVEY_INDEX_COLUMN, CUTOUT_FILE_COLUMN, CUTOUT_ROW_COLUMN]
        columns = catalog_columns + [c for c in needed + extra if c not in catalog_columns]
    return [c for c in columns if c in names]


def _read_table(catalog: Any, path: Path, columns: list[str]) -> pd.DataFrame:
    from hats.io import paths

    parts = []
    for pixel in catalog.get_healpix_pixels():
        file = paths.pixel_catalog_file(
            catalog.catalog_base_dir, pixel, npix_suffix=catalog.catalog_info.npix_suffix
        )
        try:
            parts.append(pq.read_table(file.path, columns=columns).to_pandas())
        except (OSError, ValueError) as exc:
            raise IngestError(
                f"{file.path}: cannot read partition {pixel} ({_first_line(exc)})"
            ) from exc
    if not parts:
        raise IngestError(f"{path}: the HATS catalog has no partitions")
    table = pd.concat(parts, ignore_index=True)
    if table.empty:
        raise IngestError(f"{path}: the HATS catalog has no rows")
    return table


def _survey_order(table: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Rows in the exported survey's order (``survey_index``, also of a subset of an export),
    else as read (HEALPix order)."""
    if SURVEY_INDEX_COLUMN not in table.columns:
        return table
    index = pd.to_numeric(table[SURVEY_INDEX_COLUMN], errors="coerce")
    if index.isna().any() or index.duplicated().any():
        notes.append(f"column {SURVEY_INDEX_COLUMN!r} is not one number per object; HEALPix order")
        return table
    return table.iloc[np.argsort(index.to_numpy(), kind="stable")].reset_index(drop=True)


class _CutoutArrays:
    """The zarr arrays named by ``cutout_file``, opened once each (per process: a copy sent to
    a worker opens its own)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[str, zarr.Array] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"])

    def get(self, relpath: str) -> zarr.Array:
        if relpath not in self._open:
            try:
                target = cutout_path(self.root, relpath)
            except HatsError as exc:
                raise IngestError(str(exc)) from None
            try:
                array = zarr.open_array(str(target), mode="r")
            except Exception as exc:  # zarr raises several types for a missing/corrupt array
                raise IngestError(
                    f"{target}: cannot open cutout array ({_first_line(exc)})"
                ) from exc
            if array.ndim not in (3, 4):
                raise IngestError(f"{target}: cutouts of shape {array.shape}, not (n, C, H, W)")
            self._open[relpath] = array
        return self._open[relpath]


def _bands_and_shape(
    sidecar: dict[str, Any] | None, arrays: _CutoutArrays, refs: pd.DataFrame, path: Path
) -> tuple[list[str], tuple[int, int, int]]:
    first = arrays.get(str(refs[CUTOUT_FILE_COLUMN].iloc[0]))
    shape = tuple(int(s) for s in first.shape[1:])
    if len(shape) == 2:
        shape = (1, *shape)
    bands = (sidecar or {}).get("cutouts", {}).get("bands") or first.attrs.get("bands")
    if not bands:
        bands = [f"b{i}" for i in range(shape[0])]
    if len(bands) != shape[0]:
        raise IngestError(
            f"{path}: {len(bands)} band names ({', '.join(bands)}) for cutouts with "
            f"{shape[0]} channels"
        )
    return [str(b) for b in bands], shape


def _batches(
    rows: pd.DataFrame,
    refs: pd.DataFrame,
    image_root: Path,
    shape: tuple[int, int, int],
    step: int,
    scheduler: Any = None,
) -> Iterator[Batch]:
    """The objects' cutouts, in survey order: partitions of ``step`` objects gathered from the
    zarr arrays where ``scheduler`` says (:mod:`backend.pipeline.execution`; the workers must
    see the cutouts); the catalog rows stay here."""
    from backend.pipeline.execution import executor, partitions

    files = refs[CUTOUT_FILE_COLUMN].astype(str).to_numpy()
    at = pd.to_numeric(refs[CUTOUT_ROW_COLUMN], errors="coerce").to_numpy()
    parts = partitions(len(rows), step)
    task = CutoutsPartition(_CutoutArrays(image_root.resolve()), shape)
    with executor(scheduler) as ex:
        blocks = ex.imap(task, [(files[lo:hi], at[lo:hi]) for lo, hi in parts])
        for (lo, hi), block in zip(parts, blocks, strict=True):
            yield Batch(block, rows.iloc[lo:hi].reset_index(drop=True), n_inputs=hi - lo)


@dataclass(frozen=True, eq=False)
class CutoutsPartition:
    """Pixels (n, C, H, W) of a partition's objects, given each one's ``cutout_file`` and
    ``cutout_row``."""

    arrays: _CutoutArrays
    shape: tuple[int, int, int]

    def __call__(self, refs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        files, at = refs
        block = np.empty((len(files), *self.shape), dtype=np.float32)
        for relpath in pd.unique(files):
            mine = np.flatnonzero(files == relpath)
            block[mine] = _read_rows(self.arrays.get(relpath), at[mine], relpath, self.shape)
        return block


def _read_rows(
    array: zarr.Array, wanted: np.ndarray, relpath: str, shape: tuple[int, int, int]
) -> np.ndarray:
    if not np.isfinite(wanted).all() or (wanted < 0).any() or (wanted >= array.shape[0]).any():
        raise IngestError(
            f"{relpath}: {CUTOUT_ROW_COLUMN} outside 0..{array.shape[0] - 1} for some objects"
        )
    found = tuple(int(s) for s in array.shape[1:])
    if (found if len(found) == 3 else (1, *found)) != shape:
        raise IngestError(f"{relpath}: cutouts of shape {found}, others are {shape}")
    idx = wanted.astype(np.int64)
    order = np.unique(idx)
    pixels = np.asarray(array.get_orthogonal_selection((order,)), dtype=np.float32)
    return pixels.reshape(len(order), *shape)[np.searchsorted(order, idx)]


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (the CLI prints one ``error:`` line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
