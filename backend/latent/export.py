"""Write result tables (pandas) as CSV, FITS or VOTable through astropy, for TOPCAT & co.

Object columns are made uniform first: all-string (or missing) columns become strings with
missing values as ``""``; mixed columns (numbers and text, say) become their text form; bytes
are decoded. Nullable integer/float columns become masked columns (empty in CSV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table

from backend.atomic import atomic_write
from backend.latent.errors import LatentError
from backend.usertext import csv_safe

PLAIN_CSV = "csv"


def to_table(df: pd.DataFrame) -> Table:
    """An astropy Table of ``df`` with every column of a writable, uniform type."""
    clean = pd.DataFrame(index=range(len(df)))
    for name in df.columns:
        clean[str(name)] = _uniform(df[name].reset_index(drop=True))
    table = Table.from_pandas(clean)
    table.meta.update({str(k): str(v) for k, v in df.attrs.items() if not isinstance(v, dict)})
    return table


def _uniform(col: pd.Series) -> pd.Series:
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.map(lambda t: "" if pd.isna(t) else t.isoformat()).astype(object)
    if pd.api.types.is_bool_dtype(col) and not col.isna().any():
        return col.astype(bool)
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        return col.map(_text).astype(object)
    return col


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def export_table(df: pd.DataFrame, path: Path, fmt: str | None = None) -> Path:
    """Write ``df`` to ``path``; the format follows the suffix (.csv, .fits, .vot/.xml) unless
    ``fmt`` ("csv", "fits", "votable") says otherwise. Written atomically."""
    path = Path(path)
    fmt = fmt or _format_for(path)
    table = to_table(csv_safe(df) if fmt == PLAIN_CSV else df)  # no formulas for spreadsheets

    def write(tmp: Path) -> None:
        if fmt == PLAIN_CSV:
            table.write(tmp, format="ascii.csv", overwrite=True)
        elif fmt == "fits":
            table.write(tmp, format="fits", overwrite=True)
        elif fmt == "votable":
            table.write(tmp, format="votable", overwrite=True)
        else:
            raise LatentError(f"unknown export format {fmt!r} (csv, fits, votable)")

    atomic_write(path, write)
    return path


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return PLAIN_CSV
    if suffix in {".fits", ".fit"}:
        return "fits"
    if suffix in {".vot", ".xml", ".votable"}:
        return "votable"
    raise LatentError(f"cannot tell the format of {path.name}: use .csv, .fits or .vot")
