"""Label files in and out: hard labels and vote fractions from CSV/parquet/FITS, exports.

Reading reuses the ingestion's catalog reader and cross-match (``backend.ingest.crossmatch``):
a vote catalog such as Galaxy Zoo's can be joined to a survey by object id or by sky position.
Every problem is reported with the file and the column it concerns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backend.atomic import atomic_write
from backend.ingest.crossmatch import CatalogJoin, id_strings, read_table
from backend.ingest.report import IngestError
from backend.labels.store import LabelError
from backend.labels.weights import weight_problem
from backend.survey import Survey
from backend.usertext import csv_safe

EXPORT_SUFFIXES = (".csv", ".parquet", ".fits", ".vot", ".xml")


def _read(path: Path, id_column: str) -> pd.DataFrame:
    try:
        return read_table(path, str_columns=(id_column,))
    except IngestError as exc:
        raise LabelError(str(exc).replace("catalog ", "label file ", 1)) from None


def _need(frame: pd.DataFrame, column: str, path: Path, option: str) -> None:
    if column not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:30]))
        raise LabelError(f"label file {path}: no column {column!r} ({option}); columns: {shown}")


def read_hard_labels(
    path: str | Path, *, id_column: str = "object_id", value_column: str = "value",
    user_column: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Columns object_id, value[, user][, weight] from a file of one label per row."""
    path = Path(path).expanduser()
    frame = _read(path, id_column)
    for column, option in ((id_column, "--id-column"), (value_column, "--value-column")):
        _need(frame, column, path, option)
    out = pd.DataFrame({
        "object_id": id_strings(frame[id_column]),
        "value": frame[value_column].astype(str).str.strip(),
    })  # fmt: skip
    if user_column:
        _need(frame, user_column, path, "--user-column")
        out["user"] = frame[user_column].astype(str).str.strip()
    if "weight" in frame.columns:
        out["weight"] = _weights(frame["weight"], path)
    empty = (out["object_id"] == "") | (out["value"].isin(["", "nan", "None"]))
    if empty.any():
        raise LabelError(
            f"label file {path}: {int(empty.sum())} row(s) without an object id or a value "
            f"(first at row {int(np.flatnonzero(empty.to_numpy())[0]) + 1})"
        )
    return out


def _weights(column: pd.Series, path: Path) -> pd.Series:
    """The ``weight`` column as floats; any weight that is not finite and in (0, 100] (blank,
    NaN, inf, text, 0, negative, 1e308) is refused naming its row."""
    for row, given in enumerate(column, start=1):
        problem = weight_problem(given)
        if problem is not None:
            raise LabelError(f"label file {path}: row {row}, field 'weight' {problem}")
    return pd.to_numeric(column).astype(float)


@dataclass
class VoteFile:
    """Vote fractions read from a file and joined to a survey."""

    fractions: pd.DataFrame  # object_id + one column per class
    n_votes: pd.Series | None
    rows_in_file: int
    matched: int


def parse_mapping(text: str | None) -> dict[str, str]:
    """``"spiral=t04_spiral_frac,elliptical=t01_smooth_frac"`` → {class: column}."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise LabelError(f"--map wants CLASS=COLUMN pairs separated by commas, got {part!r}")
        cls, col = (s.strip() for s in part.split("=", 1))
        mapping[cls] = col
    return mapping


def read_vote_fractions(
    path: str | Path,
    survey: Survey,
    classes: list[str],
    *,
    mapping: dict[str, str] | None = None,
    id_column: str = "object_id",
    match_radius: float | None = None,
    votes_column: str | None = None,
) -> VoteFile:
    """Vote fractions per class for the survey's objects found in the file.

    ``mapping`` gives the file column of each class (default: columns named like the classes).
    Objects are found by ``id_column`` or, with ``match_radius`` (arcsec), by position.
    """
    path = Path(path).expanduser()
    mapping = mapping or {c: c for c in classes}
    unknown = [c for c in mapping if c not in classes]
    if unknown:
        raise LabelError(f"--map names unknown class(es) {unknown} (classes: {', '.join(classes)})")
    if match_radius is not None:
        try:
            join = CatalogJoin.by_sky(path, match_radius)
        except IngestError as exc:
            raise LabelError(str(exc)) from None
        frame = join.table
        matched = join.apply(survey.catalog[["object_id", "ra", "dec"]].copy())
        hit = matched["match_sep_arcsec"].notna().to_numpy()
        source = matched.loc[hit].reset_index(drop=True)
        source["object_id"] = source["object_id"].astype(str)
    else:
        frame = _read(path, id_column)
        _need(frame, id_column, path, "--id-column")
        source = frame.assign(object_id=id_strings(frame[id_column]))
        known = source["object_id"].isin(set(survey.catalog["object_id"].astype(str)))
        source = source.loc[known].reset_index(drop=True)
    present = [c for c in mapping.values() if c in frame.columns]
    if len(present) < len(mapping):
        missing = [f"{k}={v}" for k, v in mapping.items() if v not in frame.columns]
        raise LabelError(
            f"vote file {path}: no column(s) for {', '.join(missing)}; give --map CLASS=COLUMN,..."
        )
    if len(mapping) < 2:
        raise LabelError(f"vote file {path}: fractions for at least two classes are needed")
    fractions = pd.DataFrame({"object_id": source["object_id"]})
    for cls, col in mapping.items():
        fractions[cls] = source[col].to_numpy() if col in source else np.nan
    n_votes = None
    if votes_column:
        _need(frame, votes_column, path, "--votes-column")
        n_votes = pd.to_numeric(source[votes_column], errors="coerce")
    if fractions.empty:
        how = f"within {match_radius} arcsec" if match_radius is not None else f"by {id_column}"
        raise LabelError(f"vote file {path}: no row matches an object of {survey.name} {how}")
    return VoteFile(fractions, n_votes, rows_in_file=len(frame), matched=len(fractions))


def write_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a label export atomically; the suffix picks CSV, parquet, FITS or VOTable."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise LabelError(f"{path}: export to one of {', '.join(EXPORT_SUFFIXES)}")
    frame = frame.copy()
    for col in frame.columns:  # timestamps as ISO text: every format keeps them the same way
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    if suffix == ".csv":
        safe = csv_safe(frame)  # no cell a spreadsheet would run as a formula
        atomic_write(path, lambda tmp: safe.to_csv(tmp, index=False))
    elif suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        from backend.latent.export import export_table

        export_table(frame, path)
    return path
