"""The tiled map (backend/latent/tiles.py) against brute-force aggregation of every point."""

from __future__ import annotations

import datashader as ds
import numpy as np
import pandas as pd
import pytest

from app.selection import box_indices, lasso_indices
from backend.latent.tiles import (
    TilesError,
    TileSet,
    ViewGrid,
    box_polygon,
    build_tiles,
    morton,
    quantise,
)

N = 30_000
CLASSES = ["elliptical", "spiral", "merger"]


@pytest.fixture(scope="module")
def points() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 4, (6, 2))
    which = rng.integers(0, 6, N)
    xy = centres[which] + rng.normal(0, 0.6, (N, 2))
    value = rng.gamma(2.0, 1.0, N).astype(np.float32)
    value[rng.random(N) < 0.1] = np.nan
    x, y = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
    x[5], y[9] = np.nan, np.inf  # left out of the tiles
    return {"x": x, "y": y, "cls": (which % 3).astype(np.int16), "v": value}


@pytest.fixture(scope="module")
def tiles(points: dict, tmp_path_factory: pytest.TempPathFactory) -> TileSet:
    path = tmp_path_factory.mktemp("tiles") / "tiles.zarr.zip"
    build_tiles(
        path, points["x"], points["y"], {"cls": (points["cls"], CLASSES)}, {"v": points["v"]},
        levels=3, partition_size=512,
    )  # fmt: skip
    return TileSet(path)


def _finite(points: dict) -> np.ndarray:
    return np.isfinite(points["x"]) & np.isfinite(points["y"])


def _full_view(tiles: TileSet, level: int) -> ViewGrid:
    e, side = tiles.extent, 256 << level
    return ViewGrid((e.x0, e.x1), (e.y0, e.y1), side, side)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_each_level_counts_equal_datashader(tiles: TileSet, points: dict, level: int) -> None:
    ok = _finite(points)
    grid = _full_view(tiles, level)
    frame = pd.DataFrame({"x": points["x"][ok].astype(np.float64), "y": points["y"][ok]})
    canvas = ds.Canvas(grid.width, grid.height, x_range=grid.x_range, y_range=grid.y_range)
    expected = canvas.points(frame, "x", "y", ds.count()).values
    got = tiles.aggregate("count", grid, level=level)[0]
    assert got.sum() == ok.sum() == N - 2
    np.testing.assert_array_equal(got, expected)


def test_categories_and_sums_equal_numpy(tiles: TileSet, points: dict) -> None:
    ok = _finite(points)
    level, e = 2, tiles.extent
    grid = _full_view(tiles, level)
    col = quantise(points["x"][ok], e.x0, e.width) >> np.uint32(8 - level)
    row = quantise(points["y"][ok], e.y0, e.height) >> np.uint32(8 - level)
    cats = tiles.aggregate("cls", grid, level=level)
    for k in range(len(CLASSES)):
        mine = points["cls"][ok] == k
        expected = np.zeros((grid.height, grid.width))
        np.add.at(expected, (row[mine], col[mine]), 1)
        np.testing.assert_array_equal(cats[k], expected)
    n, total = tiles.aggregate("v", grid, level=level)
    v = points["v"][ok]
    fin = np.isfinite(v)
    assert n.sum() == fin.sum()
    expected_sum = np.zeros((grid.height, grid.width))
    np.add.at(expected_sum, (row[fin], col[fin]), v[fin].astype(np.float64))
    np.testing.assert_allclose(total, expected_sum, rtol=1e-9)


def test_a_zoomed_view_draws_from_the_matching_level(tiles: TileSet, points: dict) -> None:
    ok = _finite(points)
    x, y = points["x"][ok], points["y"][ok]
    cx, cy = float(np.median(x)), float(np.median(y))
    grid = ViewGrid((cx - 2, cx + 2), (cy - 1.5, cy + 1.5), 400, 300)
    level = tiles.level_for(grid)
    assert 1 <= level <= tiles.levels
    got = tiles.aggregate("count", grid)[0]
    # every point whose level pixel centre falls in the view, counted once
    inside = (x >= cx - 2) & (x <= cx + 2) & (y >= cy - 1.5) & (y <= cy + 1.5)
    slack = ((np.abs(x - (cx - 2)) < 0.1) | (np.abs(x - (cx + 2)) < 0.1)
             | (np.abs(y - (cy - 1.5)) < 0.1) | (np.abs(y - (cy + 1.5)) < 0.1))  # fmt: skip
    assert abs(got.sum() - inside.sum()) <= slack.sum()
    assert got.sum() > 0.5 * inside.sum()


def test_partitions_in_view_hold_every_point_of_the_view_and_few_others(
    tiles: TileSet, points: dict
) -> None:
    ok = _finite(points)
    x, y = points["x"], points["y"]
    box = (float(np.nanmedian(x)) - 0.5, float(np.nanmedian(y)) - 0.5)
    xr, yr = (box[0], box[0] + 1.0), (box[1], box[1] + 1.0)
    parts = tiles.partitions_in(xr, yr)
    got = tiles.read(parts, ["x", "y", "row"])
    inside = ok & (x >= xr[0]) & (x <= xr[1]) & (y >= yr[0]) & (y <= yr[1])
    assert set(np.flatnonzero(inside)) <= set(got["row"].tolist())
    assert len(parts) < tiles.partitions / 3  # a small view reads few partitions
    np.testing.assert_array_equal(got["x"], x[got["row"]])


def test_points_are_sorted_along_the_morton_curve(tiles: TileSet) -> None:
    data = tiles.read(range(tiles.partitions), ["x", "y"])
    e = tiles.extent
    codes = morton(quantise(data["x"], e.x0, e.width), quantise(data["y"], e.y0, e.height))
    assert np.all(np.diff(codes.astype(np.float64)) >= 0)


@pytest.mark.parametrize(
    "bounds", [(-3.0, -2.0, 2.5, 4.0), (-20, -20, 20, 20), (0.1, 0.1, 0.2, 0.15)]
)
def test_box_selection_counts_and_lists_exactly(
    tiles: TileSet, points: dict, bounds: tuple
) -> None:
    x, y = points["x"], points["y"]
    expected = box_indices(x, y, bounds)
    selection = tiles.select(box_polygon(bounds))
    assert selection.count() == len(expected)
    np.testing.assert_array_equal(selection.all_rows(), expected)


def test_lasso_selection_counts_and_lists_exactly(tiles: TileSet, points: dict) -> None:
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    r = 3 + 1.5 * np.sin(3 * t)  # a concave star
    poly = np.column_stack([r * np.cos(t), r * np.sin(t)])
    expected = lasso_indices(points["x"], points["y"], poly)
    selection = tiles.select(poly)
    assert selection.count() == len(expected) > 1000
    np.testing.assert_array_equal(selection.all_rows(), expected)


def test_a_small_box_prunes_partitions_and_pages_lazily(tiles: TileSet, points: dict) -> None:
    x, y = points["x"], points["y"]
    cx, cy = float(np.nanmedian(x)), float(np.nanmedian(y))
    bounds = (cx - 1.5, cy - 1.5, cx + 1.5, cy + 1.5)
    before = tiles.reads["partitions"]
    selection = tiles.select(box_polygon(bounds))
    count = selection.count()
    counted = tiles.reads["partitions"] - before
    assert count == len(box_indices(x, y, bounds)) > 48
    assert counted < tiles.partitions / 4  # only partitions along the outline
    first = selection.rows(0, 48)
    assert len(first) == 48 and set(first) <= set(box_indices(x, y, bounds).tolist())


def test_mismatched_colouring_is_one_clear_error(tmp_path, points: dict) -> None:
    with pytest.raises(TilesError, match="colouring 'v' has 3 values"):
        build_tiles(tmp_path / "t.zip", points["x"], points["y"], None, {"v": np.zeros(3)})


def test_a_file_that_is_not_tiles_is_one_clear_error(tmp_path) -> None:
    bad = tmp_path / "tiles.zarr.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TilesError, match="cannot read the map tiles"):
        TileSet(bad)


def test_points_on_a_box_edge_or_corner_are_inside(tiles: TileSet, points: dict) -> None:
    """A box drawn through objects (its edges at their exact positions) selects them, as the
    brute-force rule does: the per-point test of the outline is inclusive."""
    x, y = points["x"], points["y"]
    ok = np.flatnonzero(_finite(points))
    a, b = ok[100], ok[2000]
    bounds = (float(x[a]), float(y[a]), float(x[b]), float(y[b]))
    expected = box_indices(x, y, bounds)
    assert {int(a), int(b)} <= set(expected.tolist())
    selection = tiles.select(box_polygon(bounds))
    assert selection.count() == len(expected)
    np.testing.assert_array_equal(selection.all_rows(), expected)
