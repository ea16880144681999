"""Object id <-> row look-ups of a survey without its catalog in memory (issue 12).

:class:`IdLookup` keeps the 64-bit hashes of a survey's object ids, sorted, with their rows
(16 bytes an object: 160 MB at 10^7, not the catalog's gigabytes of Python strings), built
once per process by reading the catalog's ``object_id`` column row group by row group. An id
is found by binary search of its hash; ids whose hash is shared by several rows are told apart
by reading those rows' ids. A row's id is read from its row group.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from backend.rowtable import RowTable, Source


def _hash(ids: Iterable[object]) -> np.ndarray:
    text = np.asarray([str(i) for i in ids] if not isinstance(ids, np.ndarray) else ids)
    return pd.util.hash_array(text.astype(str).astype(object))


class IdLookup:
    """Rows of object ids and ids of rows for one catalog file (thread-safe after build)."""

    def __init__(self, catalog: Path) -> None:
        parquet = pq.ParquetFile(catalog)
        n = parquet.metadata.num_rows
        hashes = np.empty(n, dtype=np.uint64)
        start = 0
        for g in range(parquet.metadata.num_row_groups):
            ids = parquet.read_row_group(g, columns=["object_id"]).column(0).to_pandas()
            hashes[start : start + len(ids)] = _hash(ids.to_numpy(dtype=object))
            start += len(ids)
        order = np.argsort(hashes, kind="stable")
        self._hash, self._row = hashes[order], order.astype(np.int64)
        self._ids = RowTable([Source(Path(catalog), {"object_id": "object_id"})], n)

    def __len__(self) -> int:
        return len(self._row)

    def ids_of(self, rows: Iterable[int]) -> np.ndarray:
        """Object ids (text) of ``rows``."""
        got = self._ids.values("object_id", np.asarray(list(rows), dtype=np.int64))
        return got.astype(str).to_numpy(dtype=object)

    def rows_of(self, ids: Iterable[object]) -> np.ndarray:
        """Row of each id (-1: not in the survey)."""
        wanted = np.asarray([str(i) for i in ids], dtype=object)
        h = _hash(wanted)
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
