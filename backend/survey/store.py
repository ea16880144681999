"""Read access to a survey: lazy cutouts, catalog slices and cached display PNGs."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import zarr

from backend.config import get_settings, thumb_cache_bytes
from backend.survey.meta import SurveyError, SurveyMeta, validate_survey_name
from backend.survey.render import png_bytes, to_mono, to_rgb

if TYPE_CHECKING:
    from backend.rowtable import RowTable


def thumbnail_cache_bytes() -> int:
    """The PNG cache's bound in bytes (``LATENTSKY_THUMB_CACHE_MB``: :mod:`backend.config`)."""
    return thumb_cache_bytes()


class ByteLRU:
    """A thread-safe least-recently-used map of bytes whose values total at most ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.nbytes = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.limit:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= len(old)
            self._items[key] = value
            self.nbytes += len(value)
            while self.nbytes > self.limit:
                _, dropped = self._items.popitem(last=False)
                self.nbytes -= len(dropped)


_thumb_cache: ByteLRU | None = None
_thumb_cache_lock = threading.Lock()


def thumbnail_cache() -> ByteLRU:
    """The process's PNG cache (all surveys); made anew when its configured bound changes."""
    global _thumb_cache
    limit = thumbnail_cache_bytes()
    with _thumb_cache_lock:
        if _thumb_cache is None or _thumb_cache.limit != limit:
            _thumb_cache = ByteLRU(limit)
        return _thumb_cache


def clear_thumbnail_cache() -> None:
    global _thumb_cache
    with _thumb_cache_lock:
        _thumb_cache = None


def survey_path(name: str, root: Path | None = None) -> Path:
    """Folder of survey ``name`` under the surveys root (name validated against path tricks)."""
    return (Path(root) if root else get_settings().surveys_dir) / validate_survey_name(name)


def list_surveys(root: Path | None = None) -> list[SurveyMeta]:
    """Metadata of every complete survey under the root, sorted by name."""
    root = Path(root) if root else get_settings().surveys_dir
    if not root.is_dir():
        return []
    metas = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not (path / "survey.json").is_file():
            continue
        try:
            metas.append(SurveyMeta.read(path / "survey.json"))
        except SurveyError:
            continue
    return metas


class Survey:
    """One survey folder: ``images.zarr`` (N, C, H, W), ``catalog.parquet``, ``survey.json``.

    Pixels are read lazily, chunk by chunk; nothing loads the whole image array.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SurveyError(f"no survey at {self.path}")
        self.meta = SurveyMeta.read(self.path / "survey.json")
        try:
            self.images = zarr.open_array(str(self.path / "images.zarr"), mode="r")
        except Exception as exc:  # zarr raises several types for a missing/corrupt array
            raise SurveyError(f"{self.path / 'images.zarr'}: cannot open ({exc})") from exc
        expected = (self.meta.count, *self.meta.image_shape)
        if tuple(self.images.shape) != expected:
            raise SurveyError(
                f"{self.path}: images.zarr has shape {tuple(self.images.shape)}, "
                f"survey.json says {expected}"
            )
        self._cache_token = uuid.uuid4().hex  # a rebuilt survey is a new Survey: new keys

    @classmethod
    def open(cls, name: str, root: Path | None = None) -> Survey:
        path = survey_path(name, root)
        if not path.is_dir():
            known = ", ".join(m.name for m in list_surveys(root)) or "none"
            raise SurveyError(f"unknown survey {name!r} (known: {known})")
        return cls(path)

    # -- description -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def bands(self) -> list[str]:
        return list(self.meta.bands)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta.image_shape)

    def __len__(self) -> int:
        return self.meta.count

    def __repr__(self) -> str:
        _, h, w = self.image_shape
        return f"Survey({self.name!r}, n={len(self)}, bands={''.join(self.bands)}, {h}x{w})"

    # -- catalog -----------------------------------------------------------------------------
    @cached_property
    def catalog(self) -> pd.DataFrame:
        """The whole catalog (one row per object, in image order)."""
        catalog = pd.read_parquet(self.path / "catalog.parquet")
        if len(catalog) != len(self):
            raise SurveyError(
                f"{self.path}: catalog has {len(catalog)} rows for {len(self)} images"
            )
        return catalog

    @cached_property
    def _id_index(self) -> pd.Index:
        return pd.Index(self.catalog["object_id"].to_numpy())

    @property
    def paged(self) -> bool:
        """True when rows and ids are read from the catalog file on demand (a survey of at
        least ``LATENTSKY_TILED_MAP_ABOVE`` objects whose catalog was not loaded)."""
        from backend.config import tiled_map_threshold

        return "catalog" not in self.__dict__ and len(self) >= tiled_map_threshold()

    @cached_property
    def _rows(self) -> RowTable:
        from backend.rowtable import RowTable, Source, parquet_columns

        path = self.path / "catalog.parquet"
        return RowTable([Source(path, {c: c for c in parquet_columns(path)})], len(self))

    def index_of(self, object_id: str) -> int:
        """Row index of ``object_id``; raises :class:`SurveyError` when unknown."""
        if self.paged:  # hash look-ups shared by the process, not the catalog's ids
            from backend.survey.ids import id_lookup

            loc = int(id_lookup(self.path / "catalog.parquet").rows_of([object_id])[0])
            if loc < 0:
                raise SurveyError(f"survey {self.name}: unknown object id {object_id!r}")
            return loc
        try:
            loc = self._id_index.get_loc(str(object_id))
        except KeyError:
            raise SurveyError(f"survey {self.name}: unknown object id {object_id!r}") from None
        return int(loc)

    def catalog_rows(self, indices: Sequence[int] | np.ndarray) -> pd.DataFrame:
        """Catalog rows for ``indices`` (in the order given), with an ``index`` column (of a
        paged survey: read from their row groups only)."""
        idx = self._check_indices(indices)
        rows = self._rows.rows(idx) if self.paged else self.catalog.iloc[idx].copy()
        rows.insert(0, "index", idx)
        return rows.reset_index(drop=True)

    # -- pixels ------------------------------------------------------------------------------
    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        try:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        except OverflowError:
            raise SurveyError(
                f"survey {self.name}: index out of range 0..{len(self) - 1}"
            ) from None
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            bad = idx[(idx < 0) | (idx >= len(self))][0]
            raise SurveyError(f"survey {self.name}: index {bad} out of range 0..{len(self) - 1}")
        return idx

    def cutout(self, index: int) -> np.ndarray:
        """One (C, H, W) float32 cutout."""
        i = int(self._check_indices([index])[0])
        return np.asarray(self.images[i])

    def cutout_by_id(self, object_id: str) -> np.ndarray:
        return self.cutout(self.index_of(object_id))

    def cutouts(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n, C, H, W) cutouts for ``indices`` in the order given; reads each chunk once."""
        idx = self._check_indices(indices)
        if idx.size == 0:
            return np.zeros((0, *self.image_shape), dtype=np.float32)
        order = np.unique(idx)
        block = np.asarray(self.images.get_orthogonal_selection((order,)))
        return block[np.searchsorted(order, idx)]

    def iter_batches(
        self, batch_size: int = 1024, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_index, images)`` over a contiguous range, in chunk-aligned batches."""
        stop = len(self) if stop is None else min(stop, len(self))
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            yield lo, np.asarray(self.images[lo:hi])

    # -- display -----------------------------------------------------------------------------
    def rgb(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 colour rendering with the survey's stretch and band mapping."""
        return to_rgb(self.cutout(index), self.bands, self.meta.display)

    def thumbnail_png(self, index: int, size: int | None = None) -> bytes:
        """PNG bytes of the colour rendering, cached per (index, size)."""
        return self._png(int(index), None, size)

    def _png(self, index: int, band: str | None, size: int | None) -> bytes:
        """From the process's byte-bounded cache (:func:`thumbnail_cache`), else rendered."""
        cache = thumbnail_cache()
        key = (self._cache_token, index, band, size)
        png = cache.get(key)
        if png is None:
            png = self._render_png(index, band, size)
            cache.put(key, png)
        return png

    def band_png(self, index: int, band: str, size: int | None = None) -> bytes:
        """PNG bytes of one band in greyscale, cached."""
        if band not in self.bands:
            raise SurveyError(f"survey {self.name} has no band {band!r} (bands: {self.bands})")
        return self._png(int(index), band, size)

    def _render_png(self, index: int, band: str | None, size: int | None) -> bytes:
        if band is None:
            return png_bytes(self.rgb(index), size)
        cutout = self.cutout(index)
        return png_bytes(to_mono(cutout[self.bands.index(band)], self.meta.display, band), size)
