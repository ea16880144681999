"""Map selections to object indices in numpy: box, lasso (polygon) and nearest point.

The lasso test is exact (even-odd rule) and linear in the number of points: points are binned
on a grid over the polygon's bounding box; cells the outline does not touch are inside or outside
as a whole (decided by a scanline at the cell centre), and only points in cells along the outline
get the exact crossing test, against the few edges that reach their row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numba
import numpy as np

GRID = 256
BOUNDARY = 2


class Rows(Protocol):
    """The objects of a selection, paged: a tiled map's
    :class:`backend.latent.tiles.Selection` (lazy) or :class:`ArrayRows`."""

    def count(self) -> int: ...

    def rows(self, start: int, stop: int) -> np.ndarray: ...

    def all_rows(self) -> np.ndarray: ...


class ArrayRows:
    """Selected row numbers held in memory."""

    def __init__(self, indices: np.ndarray) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)

    def count(self) -> int:
        return len(self.indices)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.indices[start:stop]

    def all_rows(self) -> np.ndarray:
        return self.indices


def box_indices(x: np.ndarray, y: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """Sorted indices of the points inside ``bounds`` = (left, bottom, right, top)."""
    x0, y0, x1, y1 = (float(b) for b in bounds)
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    mask = x >= x0
    mask &= x <= x1
    mask &= y >= y0
    mask &= y <= y1
    return np.flatnonzero(mask)


def lasso_indices(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Sorted indices of the points inside ``polygon`` (M, 2) (closed implicitly)."""
    poly = _clean_polygon(polygon)
    if poly is None:
        return np.zeros(0, dtype=np.int64)
    (xmin, ymin), (xmax, ymax) = poly.min(axis=0), poly.max(axis=0)
    grid = GRID
    cw, ch = (xmax - xmin) / grid, (ymax - ymin) / grid
    edges = np.column_stack([poly, np.roll(poly, -1, axis=0)])  # x1, y1, x2, y2
    edges = edges[edges[:, 1] != edges[:, 3]]  # horizontal edges never cross a scanline
    code = _cell_centres_inside(edges, xmin, ymin, cw, ch, grid).astype(np.int8)
    code[_boundary_cells(poly, xmin, ymin, cw, ch, grid)] = BOUNDARY
    cells = np.empty(len(x), dtype=np.int8)
    _cell_codes(np.asarray(x), np.asarray(y), xmin, ymin, xmax, ymax, 1.0 / cw, 1.0 / ch, grid,
                code.ravel(), cells)  # fmt: skip
    keep = cells == 1
    edge_rows = np.flatnonzero(cells == BOUNDARY)
    if len(edge_rows):
        row_ptr, row_edges = _edges_per_row(edges, ymin, ch, grid)
        inside = np.zeros(len(edge_rows), dtype=np.bool_)
        _exact(np.asarray(x), np.asarray(y), edge_rows, ymin, 1.0 / ch, grid, row_ptr,
               row_edges, np.ascontiguousarray(edges), inside)  # fmt: skip
        keep[edge_rows[inside]] = True
    return np.flatnonzero(keep)


def _clean_polygon(polygon: np.ndarray) -> np.ndarray | None:
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    poly = poly[np.isfinite(poly).all(axis=1)]
    if len(poly) > 1 and np.array_equal(poly[0], poly[-1]):
        poly = poly[:-1]
    if len(poly) < 3:
        return None
    span = poly.max(axis=0) - poly.min(axis=0)
    return poly if (span > 0).all() else None


def _crossings(edges: np.ndarray, yline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask (L, E) of edges crossing each horizontal line, x of the crossing (L, E))."""
    x1, y1, x2, y2 = edges.T
    yl = yline[:, None]
    crosses = (y1 <= yl) != (y2 <= yl)
    xs = x1 + (yl - y1) * (x2 - x1) / (y2 - y1)
    return crosses, xs


def _cell_centres_inside(
    edges: np.ndarray, xmin: float, ymin: float, cw: float, ch: float, grid: int
) -> np.ndarray:
    """(grid, grid) bool: is each cell centre inside (even-odd rule)?"""
    centres_y = ymin + (np.arange(grid) + 0.5) * ch
    centres_x = xmin + (np.arange(grid) + 0.5) * cw
    crosses, xs = _crossings(edges, centres_y)
    inside = np.zeros((grid, grid), dtype=bool)
    for r in range(grid):
        hits = np.sort(xs[r, crosses[r]])
        if len(hits):
            right = len(hits) - np.searchsorted(hits, centres_x, side="right")
            inside[r] = right % 2 == 1
    return inside


def _boundary_cells(
    poly: np.ndarray, xmin: float, ymin: float, cw: float, ch: float, grid: int
) -> np.ndarray:
    """(grid, grid) bool: cells within one cell of the outline."""
    start, end = poly, np.roll(poly, -1, axis=0)
    length = np.hypot((end[:, 0] - start[:, 0]) / cw, (end[:, 1] - start[:, 1]) / ch)
    steps = np.maximum(np.ceil(length * 2).astype(np.int64), 1)
    seg = np.repeat(np.arange(len(poly)), steps + 1)
    t = np.concatenate([np.linspace(0.0, 1.0, s + 1) for s in steps])
    sx = start[seg, 0] + t * (end[seg, 0] - start[seg, 0])
    sy = start[seg, 1] + t * (end[seg, 1] - start[seg, 1])
    ix = np.clip(((sx - xmin) / cw).astype(np.int64), 0, grid - 1)
    iy = np.clip(((sy - ymin) / ch).astype(np.int64), 0, grid - 1)
    marked = np.zeros((grid + 2, grid + 2), dtype=bool)
    marked[iy + 1, ix + 1] = True
    out = np.zeros((grid, grid), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= marked[dy : dy + grid, dx : dx + grid]
    return out


def _edges_per_row(
    edges: np.ndarray, ymin: float, ch: float, grid: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists (row_ptr, edge ids) of the edges whose y-range reaches each grid row."""
    lo = np.floor((np.minimum(edges[:, 1], edges[:, 3]) - ymin) / ch).astype(np.int64) - 1
    hi = np.floor((np.maximum(edges[:, 1], edges[:, 3]) - ymin) / ch).astype(np.int64) + 1
    lo, hi = np.clip(lo, 0, grid - 1), np.clip(hi, 0, grid - 1)
    counts = hi - lo + 1
    ids = np.repeat(np.arange(len(edges)), counts)
    rows = np.concatenate([np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)])
    order = np.argsort(rows, kind="stable")
    row_ptr = np.zeros(grid + 1, dtype=np.int64)
    np.add.at(row_ptr, rows + 1, 1)
    return np.cumsum(row_ptr), ids[order].astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _cell_codes(x, y, xmin, ymin, xmax, ymax, inv_cw, inv_ch, grid, code, out):
    """out[i] = code of the grid cell of point i (0 outside the bounding box). Branch-free, so
    randomly ordered points do not stall the pipeline; NaN coordinates count as outside."""
    top = grid - 1.0
    for i in range(x.shape[0]):
        px, py = np.float64(x[i]), np.float64(y[i])
        inside = (px >= xmin) & (px <= xmax) & (py >= ymin) & (py <= ymax)
        fx = (px - xmin) * inv_cw
        fy = (py - ymin) * inv_ch
        fx = fx if fx > 0.0 else 0.0
        fy = fy if fy > 0.0 else 0.0
        fx = fx if fx < top else top
        fy = fy if fy < top else top
        out[i] = code[int(fy) * grid + int(fx)] * inside


@numba.njit(cache=True, nogil=True)
def _exact(x, y, rows, ymin, inv_ch, grid, row_ptr, row_edges, edges, out):
    """Even-odd test of the points ``rows`` against the edges that reach their grid row."""
    for k in range(rows.shape[0]):
        i = rows[k]
        px, py = np.float64(x[i]), np.float64(y[i])
        cy = min(int((py - ymin) * inv_ch), grid - 1)
        inside = False
        for j in range(row_ptr[cy], row_ptr[cy + 1]):
            e = row_edges[j]
            x1, y1, x2, y2 = edges[e, 0], edges[e, 1], edges[e, 2], edges[e, 3]
            if (y1 <= py) != (y2 <= py) and px < x1 + (py - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        out[k] = inside
