"""Write a survey, its per-object products and its cutouts as a HATS collection (layout:
:mod:`backend.hats`).

The catalog is written with hats' own functions (spatial index, alignment, pixel paths, parquet
write settings, ``_metadata``, ``partition_info.csv``, ``hats.properties``, point map), the
steps hats-import runs, but straight from the survey store: no intermediate shards; beside it a
margin cache (:mod:`backend.hats.margin`) and ``collection.properties``, so LSDB opens both as
one catalog. Each partition's cutouts go to a zarr array of their own
(:mod:`backend.hats.cutouts`: a shuffle in tasks on the ``--scheduler``'s executor; the catalog
files are light and written by the caller). Everything is built in a hidden folder beside
``out`` and renamed into place at the end, so a failure (or a killed process) leaves nothing
half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hats.catalog import PartitionInfo, TableProperties
from hats.catalog.catalog_collection import CollectionProperties
from hats.catalog.dataset.hats_properties import HatsProperties
from hats.io import file_io, paths
from hats.io.parquet_metadata import write_parquet_metadata
from hats.io.skymap import write_skymap
from hats.pixel_math import HealpixPixel
from hats.pixel_math.spatial_index import SPATIAL_INDEX_COLUMN, SPATIAL_INDEX_ORDER
from tqdm import tqdm

from backend import __version__
from backend.atomic import pid_alive
from backend.hats.cutouts import cutout_rows, partition_of_rows, write_cutouts
from backend.hats.layout import (
    CUTOUT_FILE_COLUMN,
    CUTOUT_ROW_COLUMN,
    CUTOUTS_DIR,
    DEFAULT_PARTITION_ROWS,
    SIDECAR_FILE,
    SIDECAR_FORMAT,
    SIDECAR_VERSION,
    SURVEY_INDEX_COLUMN,
    HatsError,
    cutout_relpath,
)
from backend.hats.margin import MARGIN_ARCSEC, margin_partitions
from backend.hats.partition import Partitioning, partition
from backend.hats.products import ProductColumns, collect_products
from backend.pipeline.execution import SchedulerSpec
from backend.survey import Survey

_RESERVED = {SPATIAL_INDEX_COLUMN, SURVEY_INDEX_COLUMN, CUTOUT_FILE_COLUMN, CUTOUT_ROW_COLUMN}
_INCOMING = ".incoming-"


@dataclass
class ExportReport:
    """What an export wrote."""

    survey: str
    path: Path
    rows: int
    partitions: int
    max_order: int
    margin: str | None = None
    products: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        made = ", ".join(f"{p['kind']} {p['version']} {p['product']}" for p in self.products)
        return (
            f"exported survey {self.survey!r}: {self.rows:,} objects in {self.partitions} HEALPix "
            f"partitions (orders up to {self.max_order}) with cutouts, "
            f"{'margin ' + self.margin if self.margin else 'no margin'}, products: "
            f"{made or 'none'} -> {self.path} ({self.seconds:.1f} s)"
        )


def export_hats(
    survey_name: str,
    out: str | Path,
    *,
    max_rows: int = DEFAULT_PARTITION_ROWS,
    margin_arcsec: float = MARGIN_ARCSEC,
    overwrite: bool = False,
    progress: bool = True,
    scheduler: SchedulerSpec | str | None = None,
) -> ExportReport:
    """Export ``survey_name`` as a HATS collection into folder ``out``: the catalog with its
    cutouts, and a margin cache of ``margin_arcsec`` (none with 0). The cutouts are copied by
    tasks on ``scheduler`` (:mod:`backend.pipeline.execution`; its workers must see the survey
    and ``out``)."""
    started = time.perf_counter()
    if max_rows < 1:
        raise HatsError(f"--partition-rows {max_rows}: must be at least 1")
    if not margin_arcsec >= 0:
        raise HatsError(f"--margin-arcsec {margin_arcsec}: must be 0 (no margin) or more")
    survey = Survey.open(survey_name)
    catalog = survey.catalog
    _check_positions(survey, catalog)
    products, notes = collect_products(survey)
    _check_names(survey, catalog, products)
    out = Path(out).absolute()
    _check_target(out, overwrite)
    parts = partition(
        catalog["ra"].to_numpy(), catalog["dec"].to_numpy(), max_rows=max_rows, survey=survey.name
    )
    margins = margin_partitions(parts, margin_arcsec) if margin_arcsec > 0 else []
    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(out)
    tmp = out.parent / f".{out.name}{_INCOMING}{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / "writer.pid").write_text(str(os.getpid()))
        main = tmp / survey.name
        tables = _Tables(survey, catalog, products, parts)
        _write_partitions(
            tables, parts.pixels, parts.rows, main, f"catalog of {survey.name}", progress
        )
        write_cutouts(survey, parts, main, scheduler=scheduler, progress=progress)
        _write_catalog_files(survey, catalog, products, parts, main)
        margin = None
        if any(len(rows) for _, rows in margins):
            margin = f"{survey.name}_{margin_arcsec:g}arcs"
            pixels = [pixel for pixel, _ in margins]
            rows = [rows for _, rows in margins]
            _write_partitions(
                tables, pixels, rows, tmp / margin, f"margin of {survey.name}", progress
            )
            _write_margin_files(survey, pixels, tmp / margin, margin_arcsec)
        _write_collection(tmp, survey.name, margin)
        (tmp / "writer.pid").unlink()
        _swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportReport(
        survey=survey.name,
        path=out,
        rows=len(survey),
        partitions=len(parts.pixels),
        max_order=max(p.order for p in parts.pixels),
        margin=margin,
        products=[p.describe() for p in products],
        notes=notes,
        seconds=time.perf_counter() - started,
    )


# -- checks ------------------------------------------------------------------------------------
def _check_positions(survey: Survey, catalog: pd.DataFrame) -> None:
    for column, limit in (("ra", None), ("dec", 90.0)):
        if column not in catalog.columns:
            raise HatsError(
                f"survey {survey.name}: catalog has no {column!r} column; HATS partitions "
                "objects by sky position"
            )
        values = pd.to_numeric(catalog[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if limit is not None:
            bad |= np.abs(np.where(bad, 0.0, values)) > limit
        if bad.any():
            first = catalog["object_id"].iloc[int(np.flatnonzero(bad)[0])]
            raise HatsError(
                f"survey {survey.name}: column {column!r} has no valid value (degrees) for "
                f"{int(bad.sum()):,} of {len(values):,} objects (e.g. {first}); HATS partitions "
                "objects by sky position, so every object needs ra and dec"
            )


def _check_names(survey: Survey, catalog: pd.DataFrame, products: list[ProductColumns]) -> None:
    taken = set(map(str, catalog.columns))
    clash = taken & _RESERVED
    for product in products:
        clash |= taken & set(product.columns)
        taken |= set(product.columns)
    if clash:
        raise HatsError(
            f"survey {survey.name}: catalog column(s) {', '.join(sorted(clash))} clash with the "
            "columns the HATS export adds"
        )


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise HatsError(f"{out} already exists; choose another folder or pass --overwrite")
    if not _is_export(out):
        raise HatsError(
            f"{out} exists and is not a LatentSky HATS export (no collection.properties and "
            f"{SIDECAR_FILE}); not replaced: choose another folder"
        )


def _is_export(folder: Path) -> bool:
    return (folder / "collection.properties").is_file() and any(
        (child / SIDECAR_FILE).is_file() for child in folder.iterdir() if child.is_dir()
    )


# -- partitions --------------------------------------------------------------------------------
class _Tables:
    """Arrow tables of any set of survey rows: catalog columns, ``_healpix_29`` first, the
    product columns, ``survey_index`` and the cutout's address."""

    def __init__(
        self,
        survey: Survey,
        catalog: pd.DataFrame,
        products: list[ProductColumns],
        parts: Partitioning,
    ) -> None:
        self.catalog = catalog
        self.schema = pa.Schema.from_pandas(catalog, preserve_index=False)
        self.columns = _product_arrays(products)
        self.spatial_index = parts.spatial_index
        self.places = cutout_rows(parts, len(survey))
        self.which = partition_of_rows(parts, len(survey))
        self.files = np.array([cutout_relpath(pixel) for pixel in parts.pixels], dtype=object)

    def table(self, rows: np.ndarray) -> pa.Table:
        part = self.catalog.iloc[rows].reset_index(drop=True)
        table = pa.Table.from_pandas(part, schema=self.schema, preserve_index=False)
        table = table.add_column(0, SPATIAL_INDEX_COLUMN, pa.array(self.spatial_index[rows]))
        for name, (values, kind) in self.columns.items():
            if isinstance(values, pd.Series):
                array = pa.Array.from_pandas(values.iloc[rows].reset_index(drop=True), type=kind)
            else:
                flat = pa.array(np.ascontiguousarray(values[rows]).reshape(-1))
                array = pa.FixedSizeListArray.from_arrays(flat, kind.list_size)
            table = table.append_column(name, array)
        table = table.append_column(SURVEY_INDEX_COLUMN, pa.array(rows.astype(np.int64)))
        # one value per partition: parquet's dictionary encoding stores it once
        files = pa.array(self.files[self.which[rows]].tolist(), pa.string())
        table = table.append_column(CUTOUT_FILE_COLUMN, files)
        return table.append_column(CUTOUT_ROW_COLUMN, pa.array(self.places[rows]))


def _write_partitions(
    tables: _Tables,
    pixels: list[HealpixPixel],
    rows: list[np.ndarray],
    base: Path,
    desc: str,
    progress: bool,
) -> None:
    total = sum(len(r) for r in rows)
    bar = tqdm(
        total=total, desc=desc, unit="object", disable=None if progress else True, leave=False
    )
    with bar:
        for pixel, mine in zip(pixels, rows, strict=True):
            _write_parquet(tables.table(mine), base, pixel)
            bar.update(len(mine))


def _product_arrays(
    products: list[ProductColumns],
) -> dict[str, tuple[np.ndarray | pd.Series, pa.DataType]]:
    """Each product column with its arrow type, fixed once for every partition."""
    out: dict[str, tuple[np.ndarray | pd.Series, pa.DataType]] = {}
    for product in products:
        for name, values in product.columns.items():
            if isinstance(values, np.ndarray) and values.ndim == 2:
                kind = pa.from_numpy_dtype(values.dtype)
                out[name] = (values, pa.list_(kind, values.shape[1]))
            else:
                series = pd.Series(values)
                out[name] = (series, pa.Array.from_pandas(series).type)
    return out


def _write_parquet(table: pa.Table, base: Path, pixel: HealpixPixel) -> None:
    path = paths.new_pixel_catalog_file(base, pixel, create_dirs=True)
    ordering = [(SPATIAL_INDEX_COLUMN, "ascending")]
    kwargs = file_io.get_parquet_write_table_kwargs(
        table.schema,
        write_table_kwargs={
            "sorting_columns": pq.SortingColumn.from_ordering(table.schema, ordering)
        },
    )
    pq.write_table(table, path.path, **kwargs)


# -- catalog-level files -----------------------------------------------------------------------
def _write_catalog_files(
    survey: Survey,
    catalog: pd.DataFrame,
    products: list[ProductColumns],
    parts: Partitioning,
    base: Path,
) -> None:
    info = PartitionInfo.from_healpix(parts.pixels)
    info.write_to_file(paths.get_partition_info_pointer(base))
    written = write_parquet_metadata(base)
    if written != len(survey):
        raise HatsError(f"{base}: wrote {written:,} rows for {len(survey):,} objects")
    file_io.write_fits_image(parts.histogram, paths.get_point_map_file_pointer(base))
    write_skymap(histogram=parts.histogram, catalog_dir=base)
    provenance = HatsProperties.new_provenance_dict(
        paths.dataset_directory(base), builder=f"latentsky v{__version__}"
    )
    properties = TableProperties(
        catalog_name=survey.name,
        catalog_type="object",
        total_rows=len(survey),
        ra_column="ra",
        dec_column="dec",
        healpix_column=SPATIAL_INDEX_COLUMN,
        healpix_order=SPATIAL_INDEX_ORDER,
        hats_max_rows=parts.max_rows,
        hats_order=info.get_highest_order(),
        moc_sky_fraction=f"{info.calculate_fractional_coverage():0.5f}",
        skymap_order=parts.mapping_order,
        **provenance,
    )
    properties.to_properties_file(base)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "latentsky": __version__,
        "survey": survey.meta.to_dict(),
        "catalog_columns": [str(c) for c in catalog.columns],
        "products": [p.describe() for p in products],
        "cutouts": {
            "folder": CUTOUTS_DIR,
            "file_column": CUTOUT_FILE_COLUMN,
            "row_column": CUTOUT_ROW_COLUMN,
            "dtype": "float32",
            "shape": list(survey.image_shape),
            "bands": survey.bands,
        },
        "survey_index_column": SURVEY_INDEX_COLUMN,
    }
    text = json.dumps(sidecar, indent=2, default=_json_default) + "\n"
    (base / SIDECAR_FILE).write_text(text)


def _write_margin_files(
    survey: Survey, pixels: list[HealpixPixel], base: Path, arcsec: float
) -> None:
    info = PartitionInfo.from_healpix(pixels)
    info.write_to_file(paths.get_partition_info_pointer(base))
    total = write_parquet_metadata(base)
    provenance = HatsProperties.new_provenance_dict(
        paths.dataset_directory(base), builder=f"latentsky v{__version__}"
    )
    TableProperties(
        catalog_name=base.name,
        catalog_type="margin",
        total_rows=total,
        ra_column="ra",
        dec_column="dec",
        healpix_column=SPATIAL_INDEX_COLUMN,
        healpix_order=SPATIAL_INDEX_ORDER,
        primary_catalog=survey.name,
        margin_threshold=arcsec,
        hats_order=info.get_highest_order(),
        moc_sky_fraction=f"{info.calculate_fractional_coverage():0.5f}",
        **provenance,
    ).to_properties_file(base)


def _write_collection(base: Path, name: str, margin: str | None) -> None:
    properties: dict[str, object] = {"obs_collection": name, "hats_primary_table_url": name}
    if margin is not None:
        properties |= {"all_margins": margin, "default_margin": margin}
    provenance = HatsProperties.new_provenance_dict(base, builder=f"latentsky v{__version__}")
    CollectionProperties(**properties, **provenance).to_properties_file(base)


def _json_default(obj: object) -> object:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "__dict__"):
        return vars(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# -- atomic placement --------------------------------------------------------------------------
def _swap_into_place(tmp: Path, out: Path) -> None:
    trash = None
    if out.exists():
        trash = out.parent / f".{out.name}{_INCOMING}old-{uuid.uuid4().hex[:8]}"
        os.rename(out, trash)
    os.rename(tmp, out)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _sweep_stale(out: Path) -> None:
    """Remove hidden folders of exports to ``out`` whose process no longer runs."""
    for path in out.parent.glob(f".{out.name}{_INCOMING}*"):
        try:
            pid = int((path / "writer.pid").read_text())
        except (OSError, ValueError):
            pid = None
        if pid is not None and pid_alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
