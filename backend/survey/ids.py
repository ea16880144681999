"""Object id <-> row look-ups of a survey without its catalog in memory (issue 12).

:class:`IdLookup` keeps the 64-bit hashes of a survey's object ids, sorted, with their rows
(16 bytes an object: 160 MB at 10^7, not the catalog's gigabytes of Python strings). The survey
writer stores them beside the catalog (:data:`LOOKUP_FILE`, :func:`write_sorted_lookup`) and a process
memory-maps that file; a survey written before it has one gets them built once per process by
reading the catalog's ``object_id`` column row group by row group. An id is found by binary
search of its hash; ids whose hash is shared by several rows are told apart by reading those
rows' ids. A row's id is read from its row group.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from backend.rowtable import RowTable, Source
from backend.survey.beside import load_current_beside

LOOKUP_FILE = "object_ids.npy"  # beside catalog.parquet: (2, N) uint64, sorted hashes; rows
CHECKED_ROWS = 3  # rows whose ids are looked up to accept a stored file (first, middle, last)


def hash_ids(ids: Iterable[object]) -> np.ndarray:
    """64-bit hashes of object ids (as text)."""
    text = np.asarray([str(i) for i in ids] if not isinstance(ids, np.ndarray) else ids)
    return pd.util.hash_array(text.astype(str).astype(object))


def sorted_hashes(hashes: np.ndarray) -> np.ndarray:
    """(2, N) uint64: the hashes sorted, and the row of each (what :data:`LOOKUP_FILE` holds)."""
    order = np.argsort(hashes, kind="stable")
    return np.stack([hashes[order], order.astype(np.uint64)])


def write_sorted_lookup(folder: Path, table: np.ndarray) -> Path:
    """Store a :func:`sorted_hashes` table of the catalog's ``object_id`` column in ``folder``
    beside its catalog (the survey writer's staging folder: placed with the rest)."""
    path = Path(folder) / LOOKUP_FILE
    np.save(path, table)
    return path


class IdLookup:
    """Rows of object ids and ids of rows for one catalog file (thread-safe after build):
    the stored :data:`LOOKUP_FILE` memory-mapped when it is the catalog's, else built."""

    def __init__(self, catalog: Path) -> None:
        catalog = Path(catalog)
        n = pq.ParquetFile(catalog).metadata.num_rows
        self._ids = RowTable([Source(catalog, {"object_id": "object_id"})], n)
        self.stored = False
        table = self._stored(catalog, n)
        if table is None:
            table = sorted_hashes(self._read_hashes(catalog, n))
        else:
            self.stored = True
        self._hash, self._row = table[0], table[1].view(np.int64)
        if self.stored and not self._agrees(n):  # a catalog replaced without its look-up
            table = sorted_hashes(self._read_hashes(catalog, n))
            self._hash, self._row, self.stored = table[0], table[1].view(np.int64), False

    @staticmethod
    def _stored(catalog: Path, n: int) -> np.ndarray | None:
        """The catalog's stored look-up, memory-mapped; None when absent, of another size or
        older than the catalog (rewritten since)."""
        table = load_current_beside(catalog, LOOKUP_FILE)
        if table is None:
            return None
        return table if table.shape == (2, n) and table.dtype == np.uint64 else None

    @staticmethod
    def _read_hashes(catalog: Path, n: int) -> np.ndarray:
        parquet = pq.ParquetFile(catalog)
        hashes = np.empty(n, dtype=np.uint64)
        start = 0
        for g in range(parquet.metadata.num_row_groups):
            ids = parquet.read_row_group(g, columns=["object_id"]).column(0).to_pandas()
            hashes[start : start + len(ids)] = hash_ids(ids.to_numpy(dtype=object))
            start += len(ids)
        return hashes

    def _agrees(self, n: int) -> bool:
        """The stored look-up finds a few rows' ids (read from the catalog) at those rows
        (a guard against a catalog replaced by hand, beside the files' times)."""
        if n == 0:
            return True
        rows = np.unique(np.linspace(0, n - 1, CHECKED_ROWS).astype(np.int64))
        return bool(np.array_equal(self.rows_of(self.ids_of(rows)), rows))

    def __len__(self) -> int:
        return len(self._row)

    def ids_of(self, rows: Iterable[int]) -> np.ndarray:
        """Object ids (text) of ``rows``."""
        got = self._ids.values("object_id", np.asarray(list(rows), dtype=np.int64))
        return got.astype(str).to_numpy(dtype=object)

    def rows_of(self, ids: Iterable[object]) -> np.ndarray:
        """Row of each id (-1: not in the survey)."""
        wanted = np.asarray([str(i) for i in ids], dtype=object)
        h = hash_ids(wanted)
        lo = np.searchsorted(self._hash, h, side="left")
        hi = np.searchsorted(self._hash, h, side="right")
        out = np.where(hi > lo, self._row[np.minimum(lo, len(self._row) - 1)], -1)
        for k in np.flatnonzero(hi - lo > 1):  # a shared hash: the row whose id it is
            rows = self._row[lo[k] : hi[k]]
            match = rows[self.ids_of(rows) == wanted[k]]
            out[k] = int(match[0]) if len(match) else -1
        return out.astype(np.int64)


_lookups: dict[tuple[str, int], IdLookup] = {}
_lock = threading.Lock()


def id_lookup(catalog: Path) -> IdLookup:
    """The process's :class:`IdLookup` of a catalog file (rebuilt when the file changes)."""
    path = Path(catalog)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    with _lock:
        found = _lookups.get(key)
    if found is None:
        found = IdLookup(path)
        with _lock:
            for old in [k for k in _lookups if k[0] == key[0]]:
                del _lookups[old]
            found = _lookups.setdefault(key, found)
    return found
