"""A tiled latent map: a pyramid of 256x256 aggregate tiles and the points in space-filling order.

One zarr store (a zip file, one chunk per tile) holds, for a map of N points:

- ``L{l}/count``: (2^l*256, 2^l*256) uint32 counts per pixel at level ``l`` (row 0 = bottom);
- ``L{l}/cat/{name}``: (K, ...) uint32 counts per category of a categorical colouring;
- ``L{l}/num/{name}``: (2, ...) float64 (number of finite values, their sum) of a continuous one;
- ``points/x|y|row|cat/{name}|num/{name}``: the points sorted by the Morton code of their map
  position, in partitions of ``partition_size`` (one chunk each), and ``index/bbox`` the
  (xmin, ymin, xmax, ymax) of each partition, so a view or a selection reads only the partitions
  that intersect it.

Pixels: position quantised to 16 bits per axis over the map's extent; a point's pixel at level
``l`` is ``q >> (8 - l)``, its tile ``q >> (16 - l)``, so a tile at any level is a contiguous run
of the sorted points and every level is one pass, tile by tile, over them.
"""

from __future__ import annotations

import math
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import zarr
from zarr.storage import ZipStore

from backend.latent.errors import LatentError

TILE = 256
BITS = 16  # quantisation per axis: level 8 pixels
MAX_LEVEL = BITS - 8
FORMAT = 1
PARTITION_SIZE = 65_536
BLOCK = 1 << 22  # points per aggregation block (bounds temporaries)
CACHE_BYTES = 512 << 20
# Positions are stored raw: a selection reads them for every partition on its outline, and
# zstd saves ~20% of their bytes at the cost of most of the read (float noise compresses badly).
RAW = ("x", "y")


class TilesError(LatentError):
    """A tiles file that cannot be read."""


@dataclass(frozen=True)
class Extent:
    """The map's bounding box (quantisation range)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> Extent:
        """Bounding box of the finite points, widened a hair so the maximum quantises inside."""
        box = []
        for v in (x, y):
            lo, hi = (float(np.min(v)), float(np.max(v))) if len(v) else (0.0, 1.0)
            span = hi - lo if hi > lo else 1.0
            box.append((lo, lo + span * (1.0 + 1e-6)))
        return cls(box[0][0], box[1][0], box[0][1], box[1][1])

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def quantise(v: np.ndarray, lo: float, span: float) -> np.ndarray:
    """16-bit grid position (uint32) of coordinates ``v`` over [lo, lo + span)."""
    q = np.floor((np.asarray(v, dtype=np.float64) - lo) * ((1 << BITS) / span))
    return np.clip(q, 0, (1 << BITS) - 1).astype(np.uint32)


@numba.njit(cache=True, nogil=True)
def _spread(v):
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


@numba.njit(cache=True, nogil=True)
def _morton(qx, qy, out):
    for i in range(qx.shape[0]):
        out[i] = _spread(np.uint64(qx[i])) | (_spread(np.uint64(qy[i])) << np.uint64(1))


def morton(qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Morton (Z-order) codes, x bits even, y bits odd, of 16-bit grid positions."""
    out = np.empty(len(qx), dtype=np.uint64)
    _morton(np.asarray(qx, np.uint32), np.asarray(qy, np.uint32), out)
    return out


def deepest_level(n: int) -> int:
    """Deepest pyramid level for ``n`` points: deeper views hold few enough points to be drawn
    from their partitions (about 50,000 points per deepest tile on average)."""
    if n <= 50_000:
        return 2
    return int(min(MAX_LEVEL, max(2, math.ceil(math.log(n / 50_000, 4)))))


@dataclass(frozen=True)
class Layer:
    """One pre-aggregated colouring: "count", "cat" (with its categories) or "num"."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return {"count": 1, "cat": len(self.categories), "num": 2}[self.kind]

    @property
    def key(self) -> str:
        return "count" if self.kind == "count" else f"{self.kind}/{self.name}"


COUNT = Layer("count", "count")


# -- building ---------------------------------------------------------------------------------
def build_tiles(
    path: Path,
    x: np.ndarray,
    y: np.ndarray,
    categorical: dict[str, tuple[np.ndarray, Sequence[str]]] | None = None,
    continuous: dict[str, np.ndarray] | None = None,
    *,
    levels: int | None = None,
    partition_size: int = PARTITION_SIZE,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the tiles of points (x, y) to the zip file ``path``; returns its metadata.

    ``categorical``: name -> (codes in 0..K-1 per point, the K category names);
    ``continuous``: name -> float values (NaN: no value). Points with a non-finite position are
    left out. The sort needs O(N) memory (codes and order); tiles and partitions are gathered
    and written one chunk at a time.
    """
    categorical, continuous = categorical or {}, continuous or {}
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise TilesError(f"map x and y differ in length ({len(x):,} vs {len(y):,})")
    for name, (codes, cats) in categorical.items():
        if len(codes) != len(x):
            raise TilesError(f"colouring {name!r} has {len(codes):,} values for {len(x):,} points")
        if len(cats) > np.iinfo(np.int16).max:
            raise TilesError(f"colouring {name!r} has too many categories ({len(cats):,})")
    for name, values in continuous.items():
        if len(values) != len(x):
            raise TilesError(f"colouring {name!r} has {len(values):,} values for {len(x):,} points")
    say = progress or (lambda _: None)
    finite = np.isfinite(x) & np.isfinite(y)
    rows = np.flatnonzero(finite)
    xs, ys = x[rows], y[rows]
    extent = Extent.of(xs, ys)
    qx = quantise(xs, extent.x0, extent.width)
    qy = quantise(ys, extent.y0, extent.height)
    del xs, ys
    codes = morton(qx, qy)
    say("sorting points along the Morton curve")
    order = np.argsort(codes, kind="stable")
    codes, qx, qy, rows = codes[order], qx[order], qy[order], rows[order]
    del order
    depth = deepest_level(len(rows)) if levels is None else int(levels)
    if not 0 <= depth <= MAX_LEVEL:
        raise TilesError(f"levels must be 0..{MAX_LEVEL}, not {depth}")
    layers = [COUNT]
    layers += [Layer(n, "cat", tuple(str(c) for c in cats)) for n, (_, cats) in categorical.items()]
    layers += [Layer(n, "num") for n in continuous]
    meta = {
        "format": FORMAT, "extent": [extent.x0, extent.y0, extent.x1, extent.y1],
        "levels": depth, "points": len(rows), "rows": len(x),
        "partition_size": int(partition_size),
        "layers": [{"name": la.name, "kind": la.kind, "categories": list(la.categories)}
                   for la in layers],
    }  # fmt: skip
    path = Path(path)
    store = ZipStore(path, mode="w")
    try:
        root = zarr.open_group(store=store, mode="w", attributes={"tiles": meta})
        sorted_cat = {n: np.asarray(c)[rows].astype(np.int16) for n, (c, _) in categorical.items()}
        sorted_num = {n: np.asarray(v, np.float32)[rows] for n, v in continuous.items()}
        say("writing partitions")
        _write_points(root, x, y, rows, sorted_cat, sorted_num, partition_size)
        for level in range(depth + 1):
            say(f"writing level {level} of {depth}")
            _write_level(root, level, layers, codes, qx, qy, sorted_cat, sorted_num)
    finally:
        store.close()
    return meta


def _write_points(
    root: zarr.Group,
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    cats: dict[str, np.ndarray],
    nums: dict[str, np.ndarray],
    size: int,
) -> None:
    n = len(rows)
    parts = max(1, -(-n // size))
    chunk = (size,)
    columns: dict[str, tuple[np.dtype, Callable[[slice], np.ndarray]]] = {
        "x": (np.dtype(np.float32), lambda s: np.asarray(x[rows[s]], np.float32)),
        "y": (np.dtype(np.float32), lambda s: np.asarray(y[rows[s]], np.float32)),
        "row": (np.dtype(np.int64), lambda s: rows[s]),
    }
    for name, values in cats.items():
        columns[f"cat/{name}"] = (np.dtype(np.int16), lambda s, v=values: v[s])
    for name, values in nums.items():
        columns[f"num/{name}"] = (np.dtype(np.float32), lambda s, v=values: v[s])
    arrays = {
        key: root.create_array(
            f"points/{key}", shape=(n,), chunks=chunk, dtype=dtype,
            compressors=None if key in RAW else "auto",
        )
        for key, (dtype, _) in columns.items()
    }  # fmt: skip
    bbox = np.zeros((parts, 4), dtype=np.float64)
    step = size * max(1, BLOCK // size)
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        block = slice(lo, hi)
        for key, (_, get) in columns.items():
            values = get(block)
            arrays[key][lo:hi] = values
            if key in ("x", "y"):
                col = 0 if key == "x" else 1
                for p in range(lo // size, -(-hi // size)):
                    part = values[p * size - lo : min((p + 1) * size, hi) - lo]
                    bbox[p, col], bbox[p, col + 2] = part.min(), part.max()
    root.create_array("index/bbox", data=bbox, chunks=bbox.shape)


def _write_level(
    root: zarr.Group,
    level: int,
    layers: list[Layer],
    codes: np.ndarray,
    qx: np.ndarray,
    qy: np.ndarray,
    cats: dict[str, np.ndarray],
    nums: dict[str, np.ndarray],
) -> None:
    side = TILE << level
    arrays = {}
    for layer in layers:
        if layer.kind == "count":
            shape, chunks, dtype = (side, side), (TILE, TILE), np.uint32
        else:
            dtype = np.uint32 if layer.kind == "cat" else np.float64
            shape, chunks = (layer.channels, side, side), (layer.channels, TILE, TILE)
        arrays[layer.key] = root.create_array(
            f"L{level}/{layer.key}", shape=shape, chunks=chunks, dtype=dtype, fill_value=0
        )
    shift = np.uint64(2 * (BITS - level))
    pixel_shift = np.uint32(8 - level)
    start, n = 0, len(codes)
    while start < n:
        key = codes[start] >> shift
        end = int(np.searchsorted(codes, (key + np.uint64(1)) << shift, side="left"))
        tx, ty = int(qx[start]) >> (BITS - level), int(qy[start]) >> (BITS - level)
        blocks = _aggregate_run(layers, start, end, qx, qy, pixel_shift, cats, nums)
        rs, cs = slice(ty * TILE, (ty + 1) * TILE), slice(tx * TILE, (tx + 1) * TILE)
        for layer in layers:
            if layer.kind == "count":
                arrays[layer.key][rs, cs] = blocks[layer.key][0]
            else:
                arrays[layer.key][:, rs, cs] = blocks[layer.key]
        start = end


def _aggregate_run(
    layers: list[Layer],
    start: int,
    end: int,
    qx: np.ndarray,
    qy: np.ndarray,
    pixel_shift: np.uint32,
    cats: dict[str, np.ndarray],
    nums: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """(channels, 256, 256) aggregates of the sorted points start..end (one tile)."""
    npx = TILE * TILE
    out = {la.key: np.zeros((la.channels, npx), np.float64 if la.kind == "num" else np.int64)
           for la in layers}  # fmt: skip
    mask = np.uint32(TILE - 1)
    for lo in range(start, end, BLOCK):
        hi = min(lo + BLOCK, end)
        pix = ((qy[lo:hi] >> pixel_shift) & mask).astype(np.int64) * TILE
        pix += (qx[lo:hi] >> pixel_shift) & mask
        for layer in layers:
            acc = out[layer.key]
            if layer.kind == "count":
                acc[0] += np.bincount(pix, minlength=npx)
            elif layer.kind == "cat":
                k = layer.channels
                flat = cats[layer.name][lo:hi].astype(np.int64) * npx + pix
                acc += np.bincount(flat, minlength=k * npx).reshape(k, npx)
            else:
                v = nums[layer.name][lo:hi]
                ok = np.isfinite(v)
                acc[0] += np.bincount(pix[ok], minlength=npx)
                acc[1] += np.bincount(pix[ok], weights=v[ok].astype(np.float64), minlength=npx)
    return {
        la.key: out[la.key]
        .reshape(la.channels, TILE, TILE)
        .astype(np.float64 if la.kind == "num" else np.uint32)
        for la in layers
    }


# -- reading ----------------------------------------------------------------------------------
class _Cache:
    """A small byte-bounded LRU of decoded chunks, shared by the sessions of a process."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple, load: Callable[[], np.ndarray]) -> np.ndarray:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = load()
        with self.lock:
            if key not in self.items:
                self.items[key] = value
                self.size += value.nbytes
                while self.size > self.limit and len(self.items) > 1:
                    _, old = self.items.popitem(last=False)
                    self.size -= old.nbytes
        return value


@dataclass(frozen=True)
class ViewGrid:
    """An output raster: ranges and size in pixels."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int
    height: int


class TileSet:
    """Read access to a tiles file: aggregates of a view, partitions in a box, selections."""

    def __init__(self, path: Path, cache_bytes: int = CACHE_BYTES) -> None:
        self.path = Path(path)
        try:
            self._store = ZipStore(self.path, mode="r")
            self._root = zarr.open_group(store=self._store, mode="r")
            meta = dict(self._root.attrs["tiles"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise TilesError(f"cannot read the map tiles {self.path}: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise TilesError(f"{self.path}: tiles format {meta.get('format')!r}, not {FORMAT}")
        self.meta = meta
        self.extent = Extent(*meta["extent"])
        self.levels = int(meta["levels"])
        self.points = int(meta["points"])
        self.partition_size = int(meta["partition_size"])
        self.layers = {
            d["name"]: Layer(d["name"], d["kind"], tuple(d["categories"])) for d in meta["layers"]
        }
        self.bbox = np.asarray(self._root["index/bbox"][:], dtype=np.float64)
        self._cache = _Cache(cache_bytes)
        self._arrays: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.reads = {"tiles": 0, "partitions": 0}  # decoded chunks, for tests and benchmarks

    def close(self) -> None:
        self._store.close()

    def _array(self, key: str) -> Any:
        with self._lock:
            if key not in self._arrays:
                self._arrays[key] = self._root[key]
            return self._arrays[key]

    def has_layer(self, name: str) -> bool:
        return name in self.layers

    @property
    def partitions(self) -> int:
        return len(self.bbox)

    # -- tiles ----------------------------------------------------------------------------------
    def tile(self, level: int, layer: Layer, tx: int, ty: int) -> np.ndarray:
        """(channels, 256, 256) aggregates of one tile (row 0 = bottom)."""

        def load() -> np.ndarray:
            arr = self._array(f"L{level}/{layer.key}")
            rs, cs = slice(ty * TILE, (ty + 1) * TILE), slice(tx * TILE, (tx + 1) * TILE)
            self.reads["tiles"] += 1
            data = arr[rs, cs] if layer.kind == "count" else arr[:, rs, cs]
            return data.reshape(layer.channels, TILE, TILE)

        return self._cache.get(("tile", level, layer.key, tx, ty), load)

    def level_for(self, grid: ViewGrid) -> int:
        """The coarsest level whose pixels are no larger than the view's (may exceed
        ``levels``: then the view is drawn from its partitions)."""
        (vx0, vx1), (vy0, vy1) = grid.x_range, grid.y_range
        need = max(
            self.extent.width * grid.width / max(abs(vx1 - vx0), 1e-300),
            self.extent.height * grid.height / max(abs(vy1 - vy0), 1e-300),
        )
        return max(0, math.ceil(math.log2(max(need / TILE, 1e-9)) - 1e-9))

    def aggregate(self, layer_name: str, grid: ViewGrid, level: int | None = None) -> np.ndarray:
        """(channels, height, width) float64 sums of the view from the tiles of ``level``
        (default :meth:`level_for`, capped at the deepest): each tile pixel adds to the view
        pixel holding its centre; row 0 = bottom."""
        layer = self.layers[layer_name] if layer_name != "count" else COUNT
        level = min(self.level_for(grid) if level is None else level, self.levels)
        out = np.zeros((layer.channels, grid.height, grid.width), dtype=np.float64)
        (vx0, vx1), (vy0, vy1) = grid.x_range, grid.y_range
        side = TILE << level
        px_w, px_h = self.extent.width / side, self.extent.height / side
        c_lo, c_hi = _pixel_span(vx0, vx1, self.extent.x0, px_w, side)
        r_lo, r_hi = _pixel_span(vy0, vy1, self.extent.y0, px_h, side)
        if c_lo >= c_hi or r_lo >= r_hi:
            return out
        for ty in range(r_lo // TILE, (r_hi - 1) // TILE + 1):
            rows = _target(ty, self.extent.y0, px_h, vy0, vy1, grid.height)
            for tx in range(c_lo // TILE, (c_hi - 1) // TILE + 1):
                cols = _target(tx, self.extent.x0, px_w, vx0, vx1, grid.width)
                _resample(self.tile(level, layer, tx, ty), rows, cols, out)
        return out

    # -- partitions -----------------------------------------------------------------------------
    def partitions_in(self, x_range: Sequence[float], y_range: Sequence[float]) -> np.ndarray:
        """Ids of the partitions whose bounding box meets the rectangle."""
        x0, x1 = sorted(float(v) for v in x_range)
        y0, y1 = sorted(float(v) for v in y_range)
        b = self.bbox
        hit = (b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)
        return np.flatnonzero(hit)

    def partition(self, part: int, column: str) -> np.ndarray:
        """One column (x, y, row, cat/NAME, num/NAME) of one partition."""

        def load() -> np.ndarray:
            self.reads["partitions"] += 1
            lo = part * self.partition_size
            return self._array(f"points/{column}")[lo : lo + self.partition_size]

        return self._cache.get(("part", part, column), load)

    def read(self, parts: Sequence[int], columns: Sequence[str]) -> dict[str, np.ndarray]:
        """The columns of the partitions ``parts``, concatenated."""
        out = {}
        for column in columns:
            pieces = [self.partition(int(p), column) for p in parts]
            out[column] = np.concatenate(pieces) if pieces else np.zeros(0, _dtype(column))
        return out

    def iter_parts(self, parts: Sequence[int], columns: Sequence[str]) -> Iterator[dict]:
        for p in parts:
            yield {c: self.partition(int(p), c) for c in columns}

    # -- selections -----------------------------------------------------------------------------
    def select(self, polygon: np.ndarray) -> Selection:
        """The points inside ``polygon`` ((M, 2) vertices; a box is its 4 corners)."""
        return Selection(self, polygon)


def box_polygon(bounds: Sequence[float]) -> np.ndarray:
    """The corners of (left, bottom, right, top)."""
    x0, y0, x1, y1 = (float(b) for b in bounds)
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _dtype(column: str) -> np.dtype:
    if column in ("x", "y") or column.startswith("num/"):
        return np.dtype(np.float32)
    return np.dtype(np.int16) if column.startswith("cat/") else np.dtype(np.int64)


def _pixel_span(v0: float, v1: float, origin: float, size: float, side: int) -> tuple[int, int]:
    """Global pixel indices [lo, hi) whose extent meets [v0, v1]."""
    lo = int(np.clip(math.floor((min(v0, v1) - origin) / size), 0, side))
    hi = int(np.clip(math.floor((max(v0, v1) - origin) / size) + 1, 0, side))
    return lo, hi


def _target(t: int, origin: float, size: float, v0: float, v1: float, n: int) -> np.ndarray:
    """View pixel (or -1) holding the centre of each of the 256 pixels of tile row/column t."""
    centres = origin + (t * TILE + np.arange(TILE) + 0.5) * size
    idx = np.floor((centres - v0) * (n / (v1 - v0))).astype(np.int64)
    idx[(idx < 0) | (idx >= n)] = -1
    return idx


@numba.njit(cache=True, nogil=True)
def _resample(tile, rows, cols, out):
    channels = tile.shape[0]
    for r in range(tile.shape[1]):
        ro = rows[r]
        if ro < 0:
            continue
        for c in range(tile.shape[2]):
            co = cols[c]
            if co < 0:
                continue
            for k in range(channels):
                value = tile[k, r, c]
                if value:
                    out[k, ro, co] += value


# -- selections -------------------------------------------------------------------------------
SHAPE_PIXELS = 512  # the shape's bounding box spans about this many pixels at its level


class Selection:
    """Points inside a polygon: counted from the aggregates of the pixels wholly inside it and
    from the points of the partitions that meet its outline; listed lazily, partition by
    partition (in Morton order)."""

    def __init__(self, tiles: TileSet, polygon: np.ndarray) -> None:
        self.tiles = tiles
        poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        poly = poly[np.isfinite(poly).all(axis=1)]
        if len(poly) > 1 and np.array_equal(poly[0], poly[-1]):
            poly = poly[:-1]
        self.polygon = poly
        self.valid = len(poly) >= 3 and bool((np.ptp(poly, axis=0) > 0).all())
        self.is_box = self.valid and len(poly) == 4 and _axis_aligned(poly)
        self._count: int | None = None
        self._plan: tuple | None = None
        self._cursor = 0  # next candidate partition to list
        self._listed: list[np.ndarray] = []
        self._n_listed = 0

    # The pixel classification at one level over the polygon's bounding box.
    def _classify(self) -> tuple:
        if self._plan is not None:
            return self._plan
        ts, ext = self.tiles, self.tiles.extent
        (xmin, ymin), (xmax, ymax) = self.polygon.min(axis=0), self.polygon.max(axis=0)
        span = max((xmax - xmin) / ext.width, (ymax - ymin) / ext.height, 1e-12)
        level = int(np.clip(math.floor(math.log2(SHAPE_PIXELS / (TILE * span))), 0, ts.levels))
        side = TILE << level
        pw, ph = ext.width / side, ext.height / side
        c0, c1 = _pixel_span(xmin, xmax, ext.x0, pw, side)
        r0, r1 = _pixel_span(ymin, ymax, ext.y0, ph, side)
        # pixel state: 1 wholly inside, 0 outside, 2 meets the outline (exact test per point)
        state = np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), dtype=np.int8)
        if state.size:
            _classify_pixels(self.polygon, ext.x0 + c0 * pw, ext.y0 + r0 * ph, pw, ph, state)
        parts = ts.partitions_in((xmin, xmax), (ymin, ymax))
        self._plan = (level, side, pw, ph, r0, c0, state, parts)
        return self._plan

    def count(self) -> int:
        """Number of points inside (aggregates for inside pixels, points along the outline)."""
        if self._count is not None:
            return self._count
        if not self.valid:
            self._count = 0
            return 0
        level, _, _, _, r0, c0, state, parts = self._classify()
        total = 0
        inside = state == 1
        if inside.any():
            r1, c1 = r0 + state.shape[0], c0 + state.shape[1]
            for ty in range(r0 // TILE, (r1 - 1) // TILE + 1):
                for tx in range(c0 // TILE, (c1 - 1) // TILE + 1):
                    gr0, gc0 = max(ty * TILE, r0), max(tx * TILE, c0)
                    gr1, gc1 = min((ty + 1) * TILE, r1), min((tx + 1) * TILE, c1)
                    m = inside[gr0 - r0 : gr1 - r0, gc0 - c0 : gc1 - c0]
                    if not m.any():
                        continue
                    t = self.tiles.tile(level, COUNT, tx, ty)[0]
                    block = t[gr0 - ty * TILE : gr1 - ty * TILE, gc0 - tx * TILE : gc1 - tx * TILE]
                    total += int(block[m].sum(dtype=np.int64))
        for p in self._outline_parts(parts):
            keep = self._exact(int(p), outline_only=True)
            total += int(keep.sum())
        self._count = total
        return total

    def _outline_parts(self, parts: np.ndarray) -> list[int]:
        """Partitions whose bounding box has pixels on the outline (the others are wholly
        inside, counted by the aggregates, or wholly outside)."""
        _, _, pw, ph, r0, c0, state, _ = self._plan
        ext = self.tiles.extent
        out = []
        for p in parts:
            bx0, by0, bx1, by1 = self.tiles.bbox[p]
            ca, cb = _rel(bx0, bx1, ext.x0, pw, c0, state.shape[1])
            ra, rb = _rel(by0, by1, ext.y0, ph, r0, state.shape[0])
            if ca >= cb or ra >= rb:
                continue
            if (state[ra:rb, ca:cb] == 2).any():
                out.append(int(p))
        return out

    def _exact(self, part: int, outline_only: bool) -> np.ndarray:
        """Mask of the points of ``part`` inside the polygon (only those in outline pixels
        when ``outline_only``; points of inside pixels are taken whole otherwise)."""
        _, side, _, _, r0, c0, state, _ = self._plan
        ext = self.tiles.extent
        x, y = self.tiles.partition(part, "x"), self.tiles.partition(part, "y")
        keep = np.empty(len(x), dtype=np.bool_)
        _test_points(
            x, y, ext.x0, ext.width, ext.y0, ext.height, BITS - _level_bits(side), c0, r0,
            state, self.polygon, self.is_box, outline_only, keep,
        )  # fmt: skip
        return keep

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Row numbers (survey order) of the selected points start..stop in listing order;
        reads partitions only until ``stop`` points are found."""
        if not self.valid:
            return np.zeros(0, dtype=np.int64)
        *_, parts = self._classify()
        while self._n_listed < stop and self._cursor < len(parts):
            p = int(parts[self._cursor])
            self._cursor += 1
            keep = self._exact(p, outline_only=False)
            if keep.any():
                found = self.tiles.partition(p, "row")[keep]
                self._listed.append(found)
                self._n_listed += len(found)
        listed = np.concatenate(self._listed) if self._listed else np.zeros(0, np.int64)
        return listed[start:stop]

    def all_rows(self) -> np.ndarray:
        """Every selected row, sorted (reads every partition that meets the shape)."""
        return np.sort(self.rows(0, self.tiles.points))


def _level_bits(side: int) -> int:
    return side.bit_length() - 1


def _rel(v0: float, v1: float, origin: float, size: float, offset: int, n: int) -> tuple[int, int]:
    lo = math.floor((v0 - origin) / size) - offset
    hi = math.floor((v1 - origin) / size) + 1 - offset
    return max(lo, 0), min(hi, n)


def _axis_aligned(poly: np.ndarray) -> bool:
    xs, ys = np.unique(poly[:, 0]), np.unique(poly[:, 1])
    return len(xs) == 2 and len(ys) == 2


@numba.njit(cache=True, nogil=True)
def _quantised(v, lo, span):
    """:func:`quantise` of one value (the same float64 operations, so the same grid cell)."""
    q = np.floor((np.float64(v) - lo) * ((1 << BITS) / span))
    return np.int64(min(max(q, 0.0), (1 << BITS) - 1))


@numba.njit(cache=True, nogil=True)
def _test_points(x, y, ex0, ew, ey0, eh, shift, c0, r0, state, poly, is_box, outline_only, keep):
    """keep[i]: point i is inside the polygon. Its pixel's state decides (1 inside, 0 outside)
    unless an edge passes through it (2): then the exact test. With ``outline_only``, points
    of inside pixels are left out (the aggregates count them). One pass, no temporaries."""
    rows, cols = state.shape
    bx0, by0 = poly[:, 0].min(), poly[:, 1].min()
    bx1, by1 = poly[:, 0].max(), poly[:, 1].max()
    m = poly.shape[0]
    for i in range(x.shape[0]):
        col = (_quantised(x[i], ex0, ew) >> shift) - c0
        row = (_quantised(y[i], ey0, eh) >> shift) - r0
        code = state[row, col] if 0 <= row < rows and 0 <= col < cols else 0
        if code == 1:
            keep[i] = not outline_only
        elif code == 0:
            keep[i] = False
        else:
            px, py = np.float64(x[i]), np.float64(y[i])
            if is_box:
                keep[i] = bx0 <= px <= bx1 and by0 <= py <= by1
            else:
                inside = False
                for j in range(m):
                    x1, y1 = poly[j, 0], poly[j, 1]
                    x2, y2 = poly[(j + 1) % m, 0], poly[(j + 1) % m, 1]
                    if (y1 <= py) != (y2 <= py) and px < x1 + (py - y1) * (x2 - x1) / (y2 - y1):
                        inside = not inside
                keep[i] = inside


@numba.njit(cache=True, nogil=True)
def _classify_pixels(poly, x0, y0, pw, ph, state):
    """state[r, c] = 1 when pixel (r, c) (origin x0, y0; size pw x ph) lies wholly inside the
    polygon, 2 when an edge passes through it or a neighbour, 0 when wholly outside."""
    rows, cols = state.shape
    m = poly.shape[0]
    xs = np.empty(m, dtype=np.float64)
    for r in range(rows):  # even-odd fill of pixel centres, one scanline per row
        yc = y0 + (r + 0.5) * ph
        k = 0
        for j in range(m):
            x1, y1 = poly[j, 0], poly[j, 1]
            x2, y2 = poly[(j + 1) % m, 0], poly[(j + 1) % m, 1]
            if (y1 <= yc) != (y2 <= yc):
                xs[k] = x1 + (yc - y1) * (x2 - x1) / (y2 - y1)
                k += 1
        hits = np.sort(xs[:k])
        for c in range(cols):
            xc = x0 + (c + 0.5) * pw
            n_right = 0
            for h in range(k):
                if hits[h] > xc:
                    n_right += 1
            if n_right % 2 == 1:
                state[r, c] = 1
    for j in range(m):  # pixels along each edge (sampled at a quarter pixel) and neighbours
        x1, y1 = poly[j, 0], poly[j, 1]
        x2, y2 = poly[(j + 1) % m, 0], poly[(j + 1) % m, 1]
        steps = int(max(abs(x2 - x1) / pw, abs(y2 - y1) / ph) * 4) + 1
        for s in range(steps + 1):
            t = s / steps
            c = int(np.floor((x1 + t * (x2 - x1) - x0) / pw))
            r = int(np.floor((y1 + t * (y2 - y1) - y0) / ph))
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < rows and 0 <= cc < cols:
                        state[rr, cc] = 2
