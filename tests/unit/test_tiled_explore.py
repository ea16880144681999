"""Explore on a tiled map: the same pictures, picks and selections as drawing every point."""

from __future__ import annotations

from pathlib import Path

import holoviews.plotting.bokeh  # noqa: F401  (options of the map images)
import numpy as np
import pandas as pd
import pytest

from app.colouring import categorical
from app.data import SurveyData
from app.mapview import Colouring, TiledMap, tile_categories
from app.plots import MIN_ALPHA, MapStyle, map_points, render_view
from app.selection import box_indices, lasso_indices
from app.shading import categorical_rgba, category_rgb
from app.state import AppState
from backend.latent.tiles import TileSet, build_tiles
from backend.latent.tiles_product import category_codes
from backend.survey import Survey, SurveyWriter

N = 6_000
KINDS = np.array(["disc", "bulge", "merger", ""])  # "" = missing


@pytest.fixture
def survey_data(home: Path, tmp_path: Path) -> SurveyData:
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 5, (8, 2))
    blob = rng.integers(0, 8, N)
    xy = (centres[blob] + rng.normal(0, 0.7, (N, 2))).astype(np.float32)
    catalog = pd.DataFrame({
        "object_id": [f"t{i:05d}" for i in range(N)],
        "ra": np.zeros(N), "dec": np.zeros(N),
        "kind": KINDS[blob % 4], "mag": rng.normal(20, 1, N),
    })  # fmt: skip
    with SurveyWriter("tiled", ["g"], (4, 4), "test") as writer:
        writer.append(np.zeros((N, 1, 4, 4), dtype=np.float32), catalog)
    survey = Survey.open("tiled")
    table = survey.catalog.reset_index(drop=True).copy()
    table["anomaly_score"] = rng.random(N).astype(np.float32)
    data = SurveyData(
        survey, "v0001", {"encoder": "v0001"}, table, xy[:, 0].copy(), xy[:, 1].copy()
    )
    path = tmp_path / "tiles.zarr.zip"
    build_tiles(
        path, data.x, data.y, {"kind": category_codes(table["kind"])},
        {"anomaly_score": table["anomaly_score"].to_numpy()}, levels=2, partition_size=64,
    )  # fmt: skip
    data._memo["tiled_map"] = TiledMap(TileSet(path), data.x, data.y)
    return data


def _planes(element: object) -> np.ndarray:
    """(height, width, vdims) values of an image element, top row first."""
    return np.dstack([element.dimension_values(d, flat=False) for d in element.vdims])


def _class_colouring(tiled: TiledMap) -> tuple[MapStyle, Colouring, list[str]]:
    names = tiled.tiles.layers["kind"].categories
    order, key, lut = tile_categories(names, tiled.category_counts("kind"), None)
    return MapStyle("cat", colour_key=key), Colouring("kind", lut, colours=category_rgb(order, key)), order  # fmt: skip


def test_a_tiled_view_is_the_picture_of_every_point(survey_data: SurveyData) -> None:
    tiled: TiledMap = survey_data._memo["tiled_map"]
    e = tiled.tiles.extent
    view = ((e.x0, e.x1), (e.y0, e.y1), 512, 512)  # level 1 pixels, one per view pixel
    style, colouring, order = _class_colouring(tiled)
    values, key = categorical(survey_data.table["kind"])
    assert list(values.categories) == order  # the same categories as drawing every point
    got = tiled.draw(style, colouring, view)
    rgba = _planes(got)
    expected = categorical_rgba(survey_data.x, survey_data.y, values, key, *view, MIN_ALPHA)
    spread = render_view(map_points(survey_data.x, survey_data.y, values), style, *view)
    assert np.array_equal(rgba, _planes(spread))
    assert expected.shape == rgba.shape
    counts = tiled.draw(MapStyle("count"), Colouring(), view)
    assert np.nansum(_planes(counts)) == N  # every object in the home view, once


def test_a_deep_view_is_drawn_from_its_partitions_only(survey_data: SurveyData) -> None:
    tiled: TiledMap = survey_data._memo["tiled_map"]
    x, y = survey_data.x, survey_data.y
    cx, cy = float(np.median(x)), float(np.median(y))
    view = ((cx - 0.2, cx + 0.2), (cy - 0.14, cy + 0.14), 800, 560)
    before = tiled.tiles.reads["partitions"]
    image = tiled.draw(MapStyle("count"), Colouring(), view)
    inside = (x >= cx - 0.2) & (x < cx + 0.2) & (y >= cy - 0.14) & (y < cy + 0.14)
    assert inside.sum() > 0
    every = render_view(map_points(x, y), MapStyle("count"), *view)  # the same picture
    np.testing.assert_array_equal(_planes(image), _planes(every))
    read = tiled.tiles.reads["partitions"] - before
    assert 0 < read < tiled.tiles.partitions / 3


def test_mean_of_a_tiled_number_equals_the_mean_of_its_objects(survey_data: SurveyData) -> None:
    tiled: TiledMap = survey_data._memo["tiled_map"]
    e = tiled.tiles.extent
    view = ((e.x0, e.x1), (e.y0, e.y1), 256, 256)
    got = _planes(tiled.draw(MapStyle("num"), Colouring("anomaly_score"), view))[..., 0]
    values = survey_data.table["anomaly_score"].to_numpy()
    expected = render_view(map_points(survey_data.x, survey_data.y, values), MapStyle("num"), *view)
    want = _planes(expected)[..., 0].astype(np.float64)
    both = np.isfinite(want) & np.isfinite(got)
    assert both.sum() > 100 and np.isfinite(got).sum() == np.isfinite(want).sum()
    np.testing.assert_allclose(got[both], want[both], rtol=1e-5)


def explore(data: SurveyData, monkeypatch: pytest.MonkeyPatch) -> object:
    from app.views.explore import ExploreView

    monkeypatch.setattr("app.views.explore.schema_for", lambda name: _NoSchema())
    return ExploreView(data=data, state=AppState(survey=data.name))


class _NoSchema:
    def colour_key(self) -> dict[str, str]:
        return {}


def test_explore_selections_on_tiles_equal_a_scan_of_every_point(
    survey_data: SurveyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = explore(survey_data, monkeypatch)
    x, y = survey_data.x, survey_data.y
    bounds = (-2.0, -3.0, 4.0, 2.5)
    view._on_box(bounds)
    expected = box_indices(x, y, bounds)
    assert view.selection._count == len(expected) > 48
    shown = [item["index"] for item in view.selection._gallery.items]
    assert len(shown) == 48 and set(shown) <= set(expected.tolist())
    np.testing.assert_array_equal(view.selection.indices, expected)  # export: every object
    t = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    poly = np.column_stack([4 * np.cos(t), 3 * (0.6 + 0.4 * np.cos(2 * t)) * np.sin(t)])
    view._on_lasso(poly)
    assert view.selection._count == len(lasso_indices(x, y, poly))
    i = int(expected[0])
    assert view._nearest(float(x[i]), float(y[i]), 0.5) == survey_data.nearest(
        float(x[i]), float(y[i]), 0.5
    )


def test_explore_colours_by_a_tiled_class_with_counts_from_the_tiles(
    survey_data: SurveyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = explore(survey_data, monkeypatch)
    view.colour.value = "catalog:kind"
    counts = survey_data.table["kind"].replace("", "none").value_counts()
    for name, n in counts.items():
        assert f"{name} <small>{n:,}</small>" in view._legend.object
    assert view._values[0] == (survey_data.table["kind"].iat[0] or "none")
    view.colour.value = "catalog:mag"  # not tiled: drawn from every point (or the partitions)
    assert "mean per pixel" in view._legend.object


def test_empty_pixels_of_a_tiled_density_are_not_drawn(survey_data: SurveyData) -> None:
    """A pixel without objects is transparent (NaN), as in the map drawn from every point (it
    was a count of 0, painted in the colour map's lowest colour)."""
    tiled: TiledMap = survey_data._memo["tiled_map"]
    e = tiled.tiles.extent
    for view in (((e.x0, e.x1), (e.y0, e.y1), 256, 256), ((-1.0, 1.0), (-1.0, 1.0), 800, 560)):
        got = _planes(tiled.draw(MapStyle("count"), Colouring(), view))[..., 0]
        points = map_points(survey_data.x, survey_data.y)
        want = _planes(render_view(points, MapStyle("count"), *view))[..., 0]
        assert np.isnan(got).any() and (np.nan_to_num(got) > 0).any()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
