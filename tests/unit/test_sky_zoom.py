"""The Sky view of a big survey at any zoom (issue 12): a zoomed view draws deeper HEALPix
pixels of only what it shows, then the objects themselves from the catalog row groups its
RA/Dec statistics allow; a latent-map selection is highlighted from its own rows' positions."""

from __future__ import annotations

from pathlib import Path

import holoviews as hv
import holoviews.plotting.bokeh  # the options of the sky's elements
import numpy as np
import pandas as pd
import pytest

from app import data as app_data
from app import sky_plots
from app.selection import ArrayRows, box_indices
from app.state import AppState
from app.views import sky
from backend.survey import Survey, SurveyWriter
from backend.survey.skycounts import count_pixels

N, GROUP, NAME = 8_000, 500, "wide"
BOX = (152.0, 3.0, 152.6, 3.5)  # RA 152-152.6 deg, Dec 3-3.5 deg


def _sky(n: int = N, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Positions over RA 150-160, Dec 0-8 (sorted by Dec: row groups are Dec bands)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(150.0, 160.0, n), np.sort(rng.uniform(0.0, 8.0, n))


@pytest.fixture
def wide(home: Path, monkeypatch: pytest.MonkeyPatch) -> app_data.SurveyData:
    """A paged survey of N objects in row groups of GROUP, with its HEALPix counts."""
    monkeypatch.setattr("backend.survey.catalog_stream.ROW_GROUP", GROUP)
    monkeypatch.setenv("LATENTSKY_TILED_MAP_ABOVE", str(N // 2))
    monkeypatch.setattr(sky, "DRAW_PIXELS", 400)  # the survey-wide layer: coarse pixels
    ra, dec = _sky()
    catalog = pd.DataFrame({"object_id": [f"w{i}" for i in range(N)], "ra": ra, "dec": dec})
    with SurveyWriter(NAME, ["g"], (8, 8), "test") as writer:
        writer.append(np.zeros((N, 1, 8, 8), np.float32), catalog)
    app_data.clear_cache()
    data = app_data.survey_data(NAME)
    assert data.paged
    yield data
    app_data.clear_cache()


def _in_box(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    return box_indices(ra, dec, BOX)


def test_zone_pixels_across_ra_0_equal_a_direct_count() -> None:
    rng = np.random.default_rng(1)
    ra, dec = rng.normal(0.0, 3.0, 30_000) % 360.0, rng.uniform(-4.0, 4.0, 30_000)
    counts = count_pixels(ra, dec)
    rr, dr = (-1.5, 2.0), (-1.0, 1.5)  # RA 358.5-2 deg
    order = sky_plots.view_order(rr, dr, limit=5_000)
    assert order < 12 and sky_plots.view_area_deg2(rr, dr) / sky_plots.pixel_area_deg2(
        order
    ) <= 5_000 < sky_plots.view_area_deg2(rr, dr) / sky_plots.pixel_area_deg2(order + 1)
    pixels, n = sky_plots.counts_in_view(counts.pixels, counts.counts, 12, rr, dr, order)
    inside = box_indices(np.where(ra > 180, ra - 360, ra), dec, (rr[0], dr[0], rr[1], dr[1]))
    want = sky_plots.healpix_pixels(order, ra[inside], dec[inside])
    assert set(np.unique(want)) <= set(pixels.tolist())  # every object of the zone drawn
    all_pixels, all_n = counts.at_order(order)
    at = np.searchsorted(all_pixels, pixels)
    np.testing.assert_array_equal(all_pixels[at], pixels)
    np.testing.assert_array_equal(all_n[at], n)  # each pixel holds all its objects
    assert len(pixels) < len(all_pixels) / 5  # only the zone's (and its edges')


def test_a_zoomed_view_draws_deeper_pixels_of_only_what_it_shows(
    wide: app_data.SurveyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sky, "VIEW_OBJECTS", 0)  # pixels only, however few the objects
    view = sky.SkyView(data=wide, state=AppState(survey=NAME))
    whole = view.base(sky.OBJECTS)
    assert view.draw_order <= 6 and len(whole) <= 400
    assert "The whole survey" in view.detail
    x_range, y_range = (BOX[0], BOX[2]), (BOX[1], BOX[3])
    zoomed = view.base(sky.OBJECTS, x_range=x_range, y_range=y_range)
    assert "This view" in view.detail and "order 12" in view.detail
    weights = zoomed.dimension_values("objects")
    coarse = len(whole[x_range, y_range])  # survey-wide pixel centres inside the view
    assert len(zoomed) >= 10 * max(coarse, 1)  # finer: many pixels where there were few
    ra, dec = _sky()
    pix = sky_plots.healpix_pixels(12, ra, dec)
    drawn = sky_plots.healpix_pixels(
        12, zoomed.dimension_values("ra"), zoomed.dimension_values("dec")
    )
    np.testing.assert_array_equal(weights, [np.sum(pix == p) for p in drawn])
    assert set(pix[_in_box(ra, dec)]) <= set(drawn.tolist())  # every object in view
    assert weights.sum() < N / 20  # the view's objects, not the survey's
    # a wider view: a coarser order, still deeper than the survey-wide one
    mid = view.base(sky.OBJECTS, x_range=(150.0, 156.0), y_range=(0.0, 6.0))
    assert len(mid) <= sky_plots.VIEW_PIXELS and view.draw_order < 12
    plot = hv.renderer("bokeh").get_plot(view.plot)  # the page's pipeline
    ranges = [s for s in plot.streams if isinstance(s, hv.streams.RangeXY)]
    assert ranges  # a pan or zoom in the page reaches the objects layer
    for stream in ranges:
        stream.event(x_range=(150.0, 160.0), y_range=(0.0, 8.0))
    assert "order 12" in view.detail  # 80 deg² in order-12 pixels: fewer than VIEW_PIXELS
    monkeypatch.setattr(sky_plots, "VIEW_PIXELS", 20_000)
    for stream in ranges:  # (not the same ranges: the DynamicMap keeps its last answer)
        stream.event(x_range=(150.0, 160.01), y_range=(0.0, 8.0))
    assert "This view" in view.detail and "order 9" in view.detail  # 80 deg² / 20,000
    for stream in ranges:
        stream.event(x_range=x_range, y_range=y_range)
    assert "This view" in view.detail and "order 12" in view.detail
    assert wide.table.reads["full_columns"] == 0


def test_a_small_view_draws_its_objects_from_the_catalog(
    wide: app_data.SurveyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sky, "DRAW_PIXELS", 2_000_000)  # already order 12 survey-wide
    view = sky.SkyView(data=wide, state=AppState(survey=NAME))
    assert view.draw_order == 12  # fewer objects than DRAW_PIXELS: past the pixels, zoomed
    groups = wide.table.reads["groups"]
    shown = view.base(sky.OBJECTS, x_range=(BOX[0], BOX[2]), y_range=(BOX[1], BOX[3]))
    ra, dec = _sky()
    inside = _in_box(ra, dec)
    assert 0 < len(inside) == len(shown) and "objects, read from the catalog" in view.detail
    np.testing.assert_array_equal(np.sort(shown.dimension_values("ra")), np.sort(ra[inside]))
    assert (shown.dimension_values("objects") == 1).all()
    assert wide.table.reads["groups"] - groups <= 2 * 2  # ra and dec of the Dec band's groups
    monkeypatch.setattr(sky, "VIEW_GROUPS", 0)  # too many row groups: pixels stop at order 12
    pixels = view.base(sky.OBJECTS, x_range=(BOX[0], BOX[2]), y_range=(BOX[1], BOX[3]))
    assert "order 12" in view.detail and pixels.dimension_values("objects").sum() >= len(inside)
    assert wide.table.reads["full_columns"] == 0


def test_a_latent_map_selection_is_highlighted_from_its_own_rows(
    wide: app_data.SurveyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sky, "SAMPLE_GROUPS", 1)
    state = AppState(survey=NAME)
    view = sky.SkyView(data=wide, state=state)
    catalog = Survey.open(NAME).catalog
    rows = np.arange(5 * GROUP + 3, 7 * GROUP, 3)  # in two row groups only
    groups = wide.table.reads["groups"]
    state.share_selection(ArrayRows(rows), "explore")
    assert view._marked is not None and view._marked[0] is state.selection  # read as made
    marks = view.highlighted(state.selection)
    np.testing.assert_array_equal(marks.dimension_values("dec"), catalog["dec"].to_numpy()[rows])
    np.testing.assert_array_equal(marks.dimension_values("ra"), catalog["ra"].to_numpy()[rows])
    assert wide.table.reads["groups"] - groups == 2 * 2 and wide.table.reads["full_columns"] == 0
    assert view.count_text(state.selection).endswith("on the latent map")
    monkeypatch.setattr(sky, "HIGHLIGHT_ROWS", 100)  # a larger selection: an even sample read
    state.share_selection(ArrayRows(np.arange(0, N, 2)), "explore")
    assert len(view.highlighted(state.selection)) == 100
    assert "even 100 of them" in view.count_text(state.selection)


def test_a_large_highlight_marks_every_objects_pixel() -> None:
    ra, dec = _sky(50_000)
    mark_ra, mark_dec = sky_plots.highlight_positions(ra, dec, limit=1_000)
    assert 100 < len(mark_ra) <= 1_000
    from scipy.spatial import cKDTree

    gap, _ = cKDTree(np.column_stack([mark_ra, mark_dec])).query(np.column_stack([ra, dec]))
    side = np.sqrt(10.0 * 8.0 / 1_000) * 2  # a mark within a pixel or two of every object
    assert gap.max() < side
    small_ra, _ = sky_plots.highlight_positions(ra[:500], dec[:500], limit=1_000)
    np.testing.assert_array_equal(small_ra, ra[:500])  # few: the positions themselves
