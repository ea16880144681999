"""Rankings of a whole survey that are read page by page.

A list of 10^8 objects is never sorted nor turned into rows: :func:`top_order` finds the first
``stop`` positions by partial selection (``np.argpartition``, O(N)) and sorts only those;
:class:`RankedList` grows that prefix as pages further down are asked for and builds a
:class:`pandas.DataFrame` of the rows of one page. The order is that of a stable full sort:
best value first, ties by row, missing values (NaN) last.
"""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from backend.rowtable import RowTable

TOP_ROWS = 10_000  # entries of each ranking stored sorted with a scores file
TOP_KEY = "latentsky.top"  # the parquet schema metadata key that holds them


def sort_key(values: np.ndarray, descending: bool = True) -> np.ndarray:
    """Float keys whose ascending order is the wanted one (NaN last); float32 scores stay
    float32 (half the memory and time of a survey-wide key), anything else is float64."""
    values = np.asarray(values)
    dtype = np.float32 if values.dtype == np.float32 else np.float64
    key = np.negative(values, dtype=dtype) if descending else np.array(values, dtype=dtype)
    np.copyto(key, np.inf, where=np.isnan(key))
    return key


def top_order(key: np.ndarray, stop: int) -> np.ndarray:
    """Positions of the ``stop`` smallest keys, in order (ties by position): the first ``stop``
    entries of ``np.argsort(key, kind="stable")`` without sorting the rest."""
    n = len(key)
    stop = max(0, min(int(stop), n))
    if stop == 0:
        return np.empty(0, np.int64)
    if stop < n:
        kth = key[np.argpartition(key, stop - 1)[stop - 1]]
        candidates = np.flatnonzero(key <= kth)  # ties at the boundary all compete, by position
    else:
        candidates = np.arange(n)
    order = candidates[np.argsort(key[candidates], kind="stable")]
    return order[:stop].astype(np.int64)


def rank_of(values: np.ndarray, row: int, descending: bool = True) -> int:
    """1-based rank of ``values[row]`` in the order of :func:`top_order` (best first, ties by
    row, NaN last): what a survey-wide sort would give that row, in O(N) and without one."""
    key = sort_key(values, descending)
    at = key[int(row)]
    return int(np.count_nonzero(key < at) + np.count_nonzero(key[: int(row)] == at)) + 1


class RankedList:
    """The rows of ``table`` ranked by column ``by`` (best first), optionally only the rows
    where ``keep`` is true; pages are materialised on demand. Thread-safe."""

    def __init__(
        self,
        table: pd.DataFrame,
        by: str,
        *,
        descending: bool = True,
        keep: np.ndarray | None = None,
    ) -> None:
        self.table = table
        self.by = by
        key = sort_key(table[by].to_numpy(), descending) if len(table) else np.empty(0)
        self._rows = None if keep is None else np.flatnonzero(np.asarray(keep, bool))
        self._key = key if self._rows is None else key[self._rows]
        self._order = np.empty(0, np.int64)  # positions in self._key, best first
        self._lock = threading.Lock()

    @classmethod
    def empty(cls) -> RankedList:
        return cls(pd.DataFrame({"rank": np.empty(0)}), "rank")

    def __len__(self) -> int:
        return len(self._key)

    def order(self, stop: int) -> np.ndarray:
        """Table row positions of the first ``stop`` entries of the list."""
        stop = max(0, min(int(stop), len(self)))
        with self._lock:
            if stop > len(self._order):  # grow the sorted prefix, doubling
                grow = min(len(self), max(stop, 2 * len(self._order), 64))
                self._order = top_order(self._key, grow)
            head = self._order[:stop]
        return head if self._rows is None else self._rows[head]

    def page(self, start: int, stop: int) -> pd.DataFrame:
        """Entries ``start`` to ``stop`` (exclusive) of the list, as table rows."""
        start = max(0, int(start))
        rows = self.order(stop)[start:]
        return self.table.iloc[rows].reset_index(drop=True)

    def row(self, position: int) -> pd.Series:
        """Entry ``position`` of the list."""
        return self.table.iloc[int(self.order(position + 1)[position])]

    def position_of(self, row: int) -> int | None:
        """Where table row ``row`` stands in the list (None: not listed); O(N), no sort."""
        if self._rows is None:
            if not 0 <= row < len(self._key):
                return None
            at = row
        else:
            found = np.searchsorted(self._rows, row)
            if found >= len(self._rows) or self._rows[found] != row:
                return None
            at = int(found)
        key = self._key[at]
        return int(np.count_nonzero(self._key < key) + np.count_nonzero(self._key[:at] == key))

    def first_where(self, mask: np.ndarray) -> int | None:
        """Position of the best listed entry whose table row is true in ``mask``."""
        listed = (
            np.asarray(mask, bool) if self._rows is None else np.asarray(mask, bool)[self._rows]
        )
        if not listed.any():
            return None
        best = int(top_order(np.where(listed, self._key, np.inf), 1)[0])
        if not listed[best]:  # every listed key is inf: the first such in position order
            best = int(np.flatnonzero(listed)[0])
        row = best if self._rows is None else int(self._rows[best])
        return self.position_of(row)


HEAD_ROWS = 256  # rows of a ColumnRanking's first entries it keeps


@dataclass(frozen=True)
class StoredTop:
    """The first entries of a ranking as written with its file: their table ``rows`` (best
    first) and the table rows of the first :data:`HEAD_ROWS` of them (``head``)."""

    rows: np.ndarray
    head: pd.DataFrame


def _ipc(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def top_metadata(table: pd.DataFrame, columns: Sequence[str], k: int | None = None) -> bytes:
    """The first ``k`` entries of ``table`` ranked by each of ``columns`` (highest first, ties
    by row, NaN last; default :data:`TOP_ROWS`), with the rows of their first
    :data:`HEAD_ROWS`: the value of
    :data:`TOP_KEY` in the metadata of the file holding ``table`` (:func:`read_top`)."""
    stored = {}
    for column in columns:
        rows = top_order(sort_key(table[column].to_numpy()), TOP_ROWS if k is None else k)
        head = table.iloc[rows[:HEAD_ROWS]].reset_index(drop=True)
        packed = zlib.compress(rows.astype("<i8").tobytes())
        stored[column] = {
            "rows": base64.b64encode(packed).decode(),
            "head": base64.b64encode(_ipc(head)).decode(),
        }
    return json.dumps({"format": 1, "n": len(table), "columns": stored}).encode()


def read_top(path: Path, column: str) -> StoredTop | None:
    """The first entries of the file's ranking by ``column`` (highest first) stored in its
    metadata by :func:`top_metadata`; None when absent (an older file) or not for its rows."""
    try:
        meta = pq.ParquetFile(path).schema_arrow.metadata or {}
        found = meta.get(TOP_KEY.encode())
        if found is None:
            return None
        top = json.loads(found)
        entry = top["columns"].get(column)
        if top.get("format") != 1 or entry is None:
            return None
        rows = np.frombuffer(zlib.decompress(base64.b64decode(entry["rows"])), "<i8")
        reader = pa.ipc.open_stream(base64.b64decode(entry["head"]))
        head = reader.read_all().to_pandas()
    except (OSError, ValueError, KeyError, zlib.error, pa.ArrowException):
        return None
    n = pq.ParquetFile(path).metadata.num_rows
    if top.get("n") != n or (len(rows) and (rows.min() < 0 or rows.max() >= n)):
        return None
    head = pd.DataFrame({c: head[c].to_numpy() for c in head.columns}, columns=head.columns)
    return StoredTop(rows.astype(np.int64), head)


class ColumnRanking:
    """:class:`RankedList`'s list read from a :class:`backend.rowtable.RowTable` without
    holding its column: the first ``stop`` rows come from one pass over the column, row group
    by row group, keeping the best ``stop`` by partial selection (memory: a row group and the
    prefix); pages read only their rows. Same order as :class:`RankedList` (best first, ties
    by row, NaN last). Every page gets the ``constant`` columns (e.g. no interest yet) and
    copies of columns under other names (``aliases``). A ``top`` stored with the file
    (:func:`read_top`, descending only) serves the first pages without reading the column or
    the rows of its head."""

    def __init__(
        self,
        table: RowTable,
        by: str,
        *,
        descending: bool = True,
        constant: dict[str, object] | None = None,
        aliases: dict[str, str] | None = None,
        top: StoredTop | None = None,
    ) -> None:
        self.table, self.by, self.descending = table, by, descending
        self.constant = dict(constant or {})
        self.aliases = dict(aliases or {})  # page column -> table column it copies
        self._order = np.empty(0, np.int64)
        self._head = pd.DataFrame()  # the rows of the first entries, read once
        if top is not None and descending:
            self._order = top.rows[: len(table)]
            if list(top.head.columns) == list(table.columns):
                self._head = top.head
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.table)

    def _top(self, stop: int) -> np.ndarray:
        best_key = np.empty(0, np.float64)
        best_row = np.empty(0, np.int64)
        for start, values in self.table.iter_column(self.by):
            key = sort_key(np.asarray(values), self.descending)
            local = top_order(key, stop)
            keys = np.concatenate([best_key, key[local].astype(np.float64)])
            rows = np.concatenate([best_row, start + local])
            keep = top_order(keys, stop)  # earlier rows first among ties: position order
            best_key, best_row = keys[keep], rows[keep]
        return best_row

    def order(self, stop: int) -> np.ndarray:
        """Table rows of the first ``stop`` entries of the list."""
        stop = max(0, min(int(stop), len(self)))
        with self._lock:
            if stop > len(self._order):
                grow = min(len(self), max(stop, 2 * len(self._order), 64))
                self._order = self._top(grow)
            return self._order[:stop]

    def page(self, start: int, stop: int) -> pd.DataFrame:
        """Entries ``start`` to ``stop`` (exclusive) of the list, as table rows (those of the
        first :data:`HEAD_ROWS` entries read once and kept: every session's first pages)."""
        start = max(0, int(start))
        order = self.order(stop)
        with self._lock:
            head = self._head
        if len(order) > len(head) and len(head) < HEAD_ROWS:
            more = self.table.rows(order[len(head) : HEAD_ROWS])
            head = pd.concat([head, more], ignore_index=True) if len(head) else more
            with self._lock:
                if len(head) > len(self._head):
                    self._head = head
        if len(order) <= len(head):
            frame = head.iloc[start : len(order)].reset_index(drop=True)
        else:
            frame = self.table.rows(order[start:])
        for name, source in self.aliases.items():
            frame[name] = frame[source]
        for name, value in self.constant.items():
            frame[name] = value
        return frame

    def row(self, position: int) -> pd.Series:
        """Entry ``position`` of the list."""
        return self.page(position, position + 1).iloc[0]

    def position_of(self, row: int) -> int | None:
        """Where table row ``row`` stands in the list; one pass over the column, no sort."""
        if not 0 <= row < len(self):
            return None
        at = sort_key(self.table.values(self.by, [row]).to_numpy(), self.descending)[0]
        before = 0
        for start, values in self.table.iter_column(self.by):
            key = sort_key(np.asarray(values), self.descending)
            before += int(np.count_nonzero(key < at))
            if start < row:
                before += int(np.count_nonzero(key[: max(0, row - start)] == at))
        return before

    def first_where(self, mask: np.ndarray) -> int | None:
        """Position of the best entry whose table row is true in ``mask``."""
        rows = np.flatnonzero(np.asarray(mask, bool))
        if not len(rows):
            return None
        key = sort_key(self.table.values(self.by, rows).to_numpy(), self.descending)
        return self.position_of(int(rows[top_order(key, 1)[0]]))
