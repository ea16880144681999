"""Row-aligned parquet files read by column and row group, never whole (issue 12).

A survey of 10^7-10^8 objects has a catalog, predictions and anomaly scores far bigger than the
web app should hold. :class:`RowTable` joins such files (same rows, in survey order) as one
table whose rows are read on demand, one row group of the columns asked for at a time (an LRU of
192 MB keeps the groups last read), and whose counts and value ranges come from the parquet
metadata. :class:`LazyColumn` offers the part of a :class:`pandas.Series` the views use: one
value (``iat``), some rows (``iloc``, ``to_numpy()[rows]``); anything else reads the column
(once per call: callers keep what they need).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from backend.errors import UserError

ROW_GROUP = 65_536  # rows per parquet row group of the files the pipeline writes
CACHE_BYTES = 192 * 2**20  # decoded row-group columns kept (text counted at 64 B a value)
PERCENTILES_KEY = "latentsky.percentiles"  # parquet metadata: {column: [p1, p99]} (writers')


class RowTableError(UserError, ValueError):
    """A file of a row table is missing, unreadable or not row-aligned with the others."""


@dataclass(frozen=True)
class Source:
    """One parquet file and the table columns it gives: ``{table column: file column}``."""

    path: Path
    columns: Mapping[str, str]


class _File:
    def __init__(self, source: Source, n_rows: int) -> None:
        self.path = Path(source.path)
        try:
            self.parquet = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise RowTableError(f"{self.path}: cannot read ({exc})") from exc
        meta = self.parquet.metadata
        if meta.num_rows != n_rows:
            raise RowTableError(f"{self.path}: {meta.num_rows:,} rows for {n_rows:,} objects")
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        schema = self.parquet.schema_arrow
        missing = [c for c in source.columns.values() if schema.get_field_index(c) < 0]
        if missing:
            raise RowTableError(f"{self.path}: no column {missing[0]!r}")
        self.types = {c: schema.field(c).type for c in source.columns.values()}
        self.lock = threading.Lock()  # a ParquetFile is not thread-safe

    def group_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, rows, side="right") - 1

    def percentiles(self) -> dict[str, tuple[float, float]]:
        """{column: (1st, 99th percentile)} stored by the writer (:func:`percentile_metadata`)."""
        return read_percentiles(self.parquet.schema_arrow.metadata)

    def read_group(self, group: int, column: str) -> pd.Series:
        return self.read_group_arrow(group, column).to_pandas()

    def read_group_arrow(self, group: int, column: str) -> pa.ChunkedArray:
        """One row group of one column as read (Arrow: not converted to Python values)."""
        with self.lock:
            return self.parquet.read_row_group(group, columns=[column]).column(0)

    def stats(self, column: str) -> tuple[float, float] | None:
        """(min, max) of a numeric column over its row groups' statistics (None: unknown)."""
        meta = self.parquet.metadata
        index = self.parquet.schema_arrow.get_field_index(column)
        lo, hi, seen = np.inf, -np.inf, False
        for g in range(meta.num_row_groups):
            col = meta.row_group(g).column(index)
            s = col.statistics
            if s is None or not s.has_min_max:
                if s is not None and s.null_count == meta.row_group(g).num_rows:
                    continue  # all missing: nothing to add
                return None
            lo, hi, seen = min(lo, float(s.min)), max(hi, float(s.max)), True
        return (lo, hi) if seen else (np.nan, np.nan)


class RowTable:
    """Several row-aligned parquet files as one table of ``n_rows`` rows, read on demand.

    ``reads`` counts what was read: ``groups`` (row-group columns decoded), ``rows`` (values
    returned, one per row and column) and ``full_columns`` (columns read whole: what a
    survey-wide answer needs)."""

    def __init__(self, sources: Sequence[Source], n_rows: int, cache_bytes: int = CACHE_BYTES):
        self.n_rows = int(n_rows)
        self._files = [_File(s, self.n_rows) for s in sources]
        self._where: dict[str, tuple[int, str]] = {}
        for k, source in enumerate(sources):
            for name, column in source.columns.items():
                self._where.setdefault(name, (k, column))
        self._cache: OrderedDict[tuple[int, int, str], pd.Series] = OrderedDict()
        self._cache_limit, self._cache_bytes = cache_bytes, 0
        self._lock = threading.Lock()
        self.reads = {"groups": 0, "rows": 0, "full_columns": 0}

    # -- the DataFrame-like surface ----------------------------------------------------------
    @property
    def columns(self) -> pd.Index:
        return pd.Index(list(self._where))

    def __len__(self) -> int:
        return self.n_rows

    def __contains__(self, column: object) -> bool:
        return column in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __getitem__(self, column: str) -> LazyColumn:
        if column not in self._where:
            raise KeyError(column)
        return LazyColumn(self, column)

    @property
    def empty(self) -> bool:
        return self.n_rows == 0 or not self._where

    @property
    def iloc(self) -> _TableIloc:
        return _TableIloc(self)

    def dtype(self, column: str) -> np.dtype:
        k, name = self._where[column]
        kind = self._files[k].types[name]
        try:
            return np.dtype(kind.to_pandas_dtype())
        except (NotImplementedError, TypeError):
            return np.dtype(object)

    # -- reads -------------------------------------------------------------------------------
    def _group(self, k: int, group: int, name: str) -> pa.ChunkedArray:
        """One row group of one column as Arrow read it, kept in the LRU: a look-up converts
        only the rows it asks for (:func:`_decode`), never the whole group again."""
        key = (k, group, name)
        with self._lock:
            got = self._cache.get(key)
            if got is not None:
                self._cache.move_to_end(key)
                return got
        got = self._files[k].read_group_arrow(group, name)
        with self._lock:
            self.reads["groups"] += 1
            if key not in self._cache:
                self._cache[key] = got
                self._cache_bytes += _size(got)
            while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= _size(old)
        return got

    def _check(self, rows: Any) -> np.ndarray:
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_rows):
            bad = idx[(idx < 0) | (idx >= self.n_rows)][0]
            raise IndexError(f"row {bad} out of range 0..{self.n_rows - 1}")
        return idx

    def values(self, column: str, rows: Any) -> pd.Series:
        """Values of ``column`` at ``rows`` (in the order given), reading only their groups."""
        idx = self._check(rows)
        k, name = self._where[column]
        file = self._files[k]
        groups = file.group_of(idx)
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        for g in np.unique(groups):
            at = np.flatnonzero(groups == g)
            chunk = self._group(k, int(g), name)
            pieces.append((at, _decode(chunk, idx[at] - file.starts[g])))
        with self._lock:
            self.reads["rows"] += len(idx)
        if not pieces:
            return pd.Series(np.empty(0, dtype=self.dtype(column)), name=column)
        if len(pieces) == 1:
            return pd.Series(pieces[0][1], name=column)
        try:
            dtype = np.result_type(*[p.dtype for _, p in pieces])
        except TypeError:
            dtype = np.dtype(object)
        out = np.empty(len(idx), dtype=dtype)
        for at, got in pieces:
            out[at] = got
        return pd.Series(out, name=column)

    def rows(self, rows: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows ``rows`` (in the order given) of ``columns`` (default all)."""
        idx = self._check(rows)
        names = list(self._where) if columns is None else list(columns)
        return pd.DataFrame(
            {c: self.values(c, idx).to_numpy() for c in names}, columns=names
        ).reset_index(drop=True)

    def column(self, column: str) -> pd.Series:
        """The whole column (read now; what survey-wide answers need)."""
        k, name = self._where[column]
        file = self._files[k]
        with file.lock:
            got = file.parquet.read(columns=[name]).column(0).to_pandas()
        with self._lock:
            self.reads["full_columns"] += 1
        return got.rename(column).reset_index(drop=True)

    def iter_column(self, column: str) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, values) of ``column`` row group by row group (not cached)."""
        k, name = self._where[column]
        file = self._files[k]
        for g in range(len(file.starts) - 1):
            values = file.read_group(g, name).to_numpy()
            with self._lock:
                self.reads["groups"] += 1
            yield int(file.starts[g]), values

    def sample(self, column: str, groups: int = 8) -> np.ndarray:
        """The values of up to ``groups`` row groups spread over the table (a sample of the
        column for summaries such as percentiles; the same rows each time)."""
        k, name = self._where[column]
        n_groups = len(self._files[k].starts) - 1
        picked = np.unique(np.linspace(0, n_groups - 1, min(groups, n_groups)).astype(int))
        parts = [_decode(self._group(k, int(g), name)) for g in picked]
        return np.concatenate(parts) if parts else np.empty(0)

    def sample_rows(
        self, columns: Sequence[str], groups: int = 16
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """(rows, their values of ``columns``) of up to ``groups`` whole row groups (of the
        first column's file) spread over the table: a bounded sample, the same each time."""
        k, _ = self._where[columns[0]]
        starts = self._files[k].starts
        n_groups = len(starts) - 1
        picked = np.unique(np.linspace(0, n_groups - 1, min(groups, n_groups)).astype(int))
        parts = [np.arange(starts[g], starts[g + 1]) for g in picked]
        rows = np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)
        return rows, self.rows(rows, columns)

    def value_range(self, column: str) -> tuple[float, float] | None:
        """(min, max) of a numeric column from the files' statistics; None when unknown."""
        k, name = self._where[column]
        return self._files[k].stats(name)

    def stored_percentiles(self, column: str) -> tuple[float, float] | None:
        """(1st, 99th percentile) of a column as its file's writer stored them (over every
        row, :func:`percentile_metadata`); None for a column or an older file without them."""
        k, name = self._where[column]
        return self._files[k].percentiles().get(name)


class LazyColumn:
    """One column of a :class:`RowTable`, read row by row where the views ask for rows."""

    def __init__(self, table: RowTable, name: str) -> None:
        self.table, self.name = table, name

    @property
    def dtype(self) -> np.dtype:
        return self.table.dtype(self.name)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def iat(self) -> _ColumnAt:
        return _ColumnAt(self)

    @property
    def iloc(self) -> _ColumnAt:
        return _ColumnAt(self)

    def to_numpy(self, dtype: Any = None, na_value: Any = None, **_: Any) -> Any:
        """A :class:`ColumnArray` (rows read when indexed); with a ``dtype`` or ``na_value``
        the whole column as an array."""
        if dtype is None and na_value is None:
            return ColumnArray(self)
        series = self.series()
        if na_value is None:
            return series.to_numpy(dtype=dtype)
        return series.to_numpy(dtype=dtype, na_value=na_value)

    def value_range(self) -> tuple[float, float] | None:
        return self.table.value_range(self.name)

    def series(self) -> pd.Series:
        """The whole column as a Series (read now)."""
        return self.table.column(self.name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.series().to_numpy(), dtype=dtype)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.series())

    def __getitem__(self, rows: Any) -> Any:
        return _ColumnAt(self)[rows]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):  # pandas probes private names: this is not a Series
            raise AttributeError(attr)
        return getattr(self.series(), attr)


class ColumnArray:
    """``LazyColumn.to_numpy()``: indexing reads the rows asked for; ``np.asarray`` all."""

    def __init__(self, column: LazyColumn) -> None:
        self.column = column

    @property
    def dtype(self) -> np.dtype:
        return self.column.dtype

    @property
    def shape(self) -> tuple[int]:
        return (len(self.column),)

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, rows: Any) -> Any:
        got = _ColumnAt(self.column)[rows]
        return got.to_numpy() if isinstance(got, pd.Series) else got

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.column.series().to_numpy(), dtype=dtype)


def _size(values: pa.ChunkedArray) -> int:
    """Bytes an Arrow column holds (its buffers)."""
    return int(values.nbytes)


def _decode(values: pa.ChunkedArray, positions: np.ndarray | None = None) -> np.ndarray:
    """The values at ``positions`` (default all) as NumPy, through pandas' conversion (as a
    whole group's would be: nulls, text and times alike), converting only those rows."""
    if positions is not None:
        values = values.take(pa.array(np.asarray(positions, dtype=np.int64)))
    return values.to_pandas().to_numpy()


def _positions(rows: Any, n: int) -> np.ndarray | int:
    """Row positions of an int, slice, list, integer or boolean array."""
    if isinstance(rows, slice):
        return np.arange(*rows.indices(n), dtype=np.int64)
    if isinstance(rows, int | np.integer):
        return int(rows) + n if rows < 0 else int(rows)
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if len(arr) != n:
            raise IndexError(f"boolean mask of {len(arr)} for {n} rows")
        return np.flatnonzero(arr)
    return arr.astype(np.int64).reshape(-1)


class _ColumnAt:
    def __init__(self, column: LazyColumn) -> None:
        self.column = column

    def __getitem__(self, rows: Any) -> Any:
        at = _positions(rows, len(self.column))
        if isinstance(at, int):
            return self.column.table.values(self.column.name, [at]).iat[0]
        return self.column.table.values(self.column.name, at)


class _TableIloc:
    def __init__(self, table: RowTable) -> None:
        self.table = table

    def __getitem__(self, rows: Any) -> pd.DataFrame | pd.Series:
        at = _positions(rows, len(self.table))
        if isinstance(at, int):
            return self.table.rows([at]).iloc[0]
        frame = self.table.rows(at)
        frame.index = at
        return frame


def percentile_metadata(table: pd.DataFrame, columns: Sequence[str]) -> bytes:
    """The value of :data:`PERCENTILES_KEY` for a file holding ``table``: the 1st and 99th
    percentiles of the finite values of each of ``columns`` (null when a column has none), so a
    reader of one object gets the survey's range without reading the column."""
    stored: dict[str, list[float] | None] = {}
    for column in columns:
        v = np.asarray(table[column], dtype=np.float64)
        v = v[np.isfinite(v)]
        stored[column] = [float(p) for p in np.percentile(v, [1.0, 99.0])] if len(v) else None
    return json.dumps({"format": 1, "columns": stored}).encode()


def read_percentiles(metadata: Mapping[bytes, bytes] | None) -> dict[str, tuple[float, float]]:
    """{column: (1st, 99th percentile)} from a parquet schema's metadata (empty when absent)."""
    found = (metadata or {}).get(PERCENTILES_KEY.encode())
    if found is None:
        return {}
    try:
        stored = json.loads(found)
        if stored.get("format") != 1:
            return {}
        return {c: (float(v[0]), float(v[1])) for c, v in stored["columns"].items() if v}
    except (ValueError, KeyError, TypeError, IndexError):
        return {}


def parquet_columns(path: Path) -> list[str]:
    """The column names of a parquet file (its schema only)."""
    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except (OSError, pa.ArrowException) as exc:
        raise RowTableError(f"{path}: cannot read ({exc})") from exc


def parquet_rows(path: Path) -> int:
    """The number of rows of a parquet file (its metadata only)."""
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, pa.ArrowException) as exc:
        raise RowTableError(f"{path}: cannot read ({exc})") from exc
