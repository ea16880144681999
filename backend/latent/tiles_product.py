"""The map-tiles product of a (survey, encoder version): which colourings are pre-aggregated,
where the file lives, and the builder behind ``ensure(survey, ["tiles"])``.

Pre-aggregated: the predicted class and the catalog's few-valued text columns (counts per
category; missing values are the category ""), and the continuous model outputs (anomaly
score, entropy, BALD: count and sum of the finite values). Any other colouring is aggregated
from the partitions in view.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend.latent.source import MAP_FILE, latent_dir, resolve_encoder_version
from backend.latent.tiles import TileSet, build_tiles
from backend.pipeline.kinds import TILES_FILE, TILES_META_FILE
from backend.rowtable import ROW_GROUP

MAX_TILE_CATEGORIES = 64  # as the app's "few-valued" catalog columns
CONTINUOUS = {"anomaly": "anomaly_score", "entropy": "entropy", "bald": "bald"}


def tiles_path(survey: str, version: str) -> Path:
    return latent_dir(survey, version) / TILES_FILE


def open_tiles(survey: str, version: str) -> TileSet | None:
    """The tiles of (survey, encoder version), or None when they were not made."""
    path = tiles_path(survey, version)
    return TileSet(path) if path.is_file() else None


def category_codes(values: pd.Series) -> tuple[np.ndarray, list[str]] | None:
    """(int16 codes, category names) of a few-valued column as text ("" for missing), or None
    when it has more than :data:`MAX_TILE_CATEGORIES` values or is numeric (not bool)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return None
    text = values.astype(object)
    text = text.where(text.notna(), "").astype(str)
    text = text.where(text.str.strip() != "", "")
    codes, uniques = pd.factorize(text, sort=True)
    if not 1 < len(uniques) <= MAX_TILE_CATEGORIES:
        return None
    return codes.astype(np.int16), [str(u) for u in uniques]


def column_categories(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]] | None:
    """:func:`category_codes` of a catalog column read by Arrow, without Python objects per
    row: the normalising is done on its distinct values (a 10^8-row catalog read whole as
    pandas took ~15 GB; its text columns alone, as Arrow, a few)."""
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return None
    if pa.types.is_dictionary(column.type):
        column = column.cast(kind)
    head = pc.unique(column.slice(0, ROW_GROUP))
    if (
        len(head) > MAX_TILE_CATEGORIES
        and category_codes(pd.Series(head.to_pylist(), dtype=object)) is None
    ):
        return None  # many-valued already in its first rows (names, ids): not counted whole
    distinct = pc.unique(column)
    if len(distinct) > 4 * MAX_TILE_CATEGORIES:  # blanks and nulls fold into "": a margin
        return None
    names = pd.Series(distinct.to_pylist(), dtype=object)
    found = category_codes(names)  # the same naming as the pandas path, on distinct values
    if found is None:
        return None
    per_distinct, categories = found
    where = pc.index_in(column, value_set=distinct).to_numpy(zero_copy_only=False)
    blank = categories.index("") if "" in categories else -1
    codes = np.full(len(column), blank, dtype=np.int16)
    known = ~np.isnan(where) if where.dtype.kind == "f" else np.ones(len(where), bool)
    codes[known] = per_distinct[where[known].astype(np.int64)]
    return codes, categories


def colourings(
    survey: str, version: str, numeric_columns: Sequence[str] = ()
) -> tuple[dict[str, tuple[np.ndarray, list[str]]], dict[str, np.ndarray]]:
    """The categorical and continuous colourings of a survey that its tiles aggregate (and
    the catalog's ``numeric_columns``); the catalog is read one column at a time."""
    from backend.pipeline.planner import resolve_versions
    from backend.pipeline.storage import ANOMALY_FILE, ProductError, read_predictions
    from backend.survey import Survey

    path = Survey.open(survey).path / "catalog.parquet"
    catalog = pq.ParquetFile(path)
    n = catalog.metadata.num_rows
    names = catalog.schema_arrow.names
    cats: dict[str, tuple[np.ndarray, list[str]]] = {}
    nums: dict[str, np.ndarray] = {}
    classifier = resolve_versions(survey).models.get("classifier")
    if classifier:
        try:
            preds = read_predictions(survey, "classifier", classifier)
        except ProductError:
            preds = None
        if preds is not None and len(preds) == n:
            if "pred_class" in preds:
                found = category_codes(preds["pred_class"])
                if found:
                    cats["pred_class"] = found
            for col in ("entropy", "bald"):
                if col in preds:
                    nums[col] = preds[col].to_numpy(np.float32, na_value=np.nan)
    for col in names:
        if col in ("object_id", "index", "ra", "dec") or col in cats:
            continue
        found = column_categories(catalog.read(columns=[col]).column(0))
        if found:
            cats[col] = found
    for col in numeric_columns:
        if col not in names:
            raise ProductError(f"survey {survey} has no catalog column {col!r} to tile")
        values = catalog.read(columns=[col]).column(0).to_pandas()
        nums[col] = pd.to_numeric(values, errors="coerce").to_numpy(np.float32)
    scores = latent_dir(survey, version) / ANOMALY_FILE
    if scores.is_file():
        frame = pd.read_parquet(scores, columns=["anomaly"])
        if len(frame) == n:
            nums[CONTINUOUS["anomaly"]] = frame["anomaly"].to_numpy(np.float32, na_value=np.nan)
    return cats, nums


def make_tiles(
    survey_name: str, version: str | None = None, numeric_columns: Sequence[str] = ()
) -> dict[str, Any]:
    """Build ``tiles.zarr.zip`` + ``tiles.json`` beside the map (published together), then the
    lineage record; returns the tiles' metadata. ``numeric_columns``: catalog columns to
    pre-aggregate too (the pipeline passes none)."""
    from backend.atomic import atomic_write_json
    from backend.pipeline.build import record
    from backend.pipeline.kinds import PRODUCTS, Target
    from backend.pipeline.storage import ProductError, publish

    started = time.perf_counter()
    version = resolve_encoder_version(survey_name, version)
    directory = latent_dir(survey_name, version)
    map_path = directory / MAP_FILE
    if not map_path.is_file():
        raise ProductError(
            f"no map of survey {survey_name} ({version}) to tile: run "
            f"`python -m backend map --survey {survey_name}`"
        )
    coords = np.load(map_path, mmap_mode="r")
    cats, nums = colourings(survey_name, version, numeric_columns)
    if len(coords) and any(len(c) != len(coords) for c, _ in cats.values()):
        raise ProductError(f"{map_path}: {len(coords):,} points do not match the catalog rows")
    with publish(directory, PRODUCTS["tiles"].files) as staging:
        meta = build_tiles(
            staging / TILES_FILE, np.asarray(coords[:, 0]), np.asarray(coords[:, 1]), cats, nums
        )
        atomic_write_json(staging / TILES_META_FILE, meta)
    target = Target("tiles", survey_name, "encoder", version)
    record(target, None, time.perf_counter() - started)
    return meta
