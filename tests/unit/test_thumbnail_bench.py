"""``bench/bench_scale.py --thumbnails``: a box selection's first page with its pictures, made
by the ``/thumb`` route's code and fetched from it over HTTP (issue 12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.bench_scale import SURVEY, build_survey, galaxy_cutouts, measure_thumbnails


def test_the_synthetic_pictures_are_not_blank_and_do_not_depend_on_the_batch() -> None:
    whole = galaxy_cutouts(0, 300)
    assert whole.shape == (300, 1, 8, 8) and whole.dtype == np.float32
    assert np.array_equal(galaxy_cutouts(0, 300), whole)  # seeded
    assert whole.std() > 0.5 and (whole[:, 0, 3:5, 3:5].mean() > whole[:, 0, 0, 0].mean() + 1)


def test_the_thumbnail_bench_measures_a_page_of_real_pictures(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSKY_TILED_MAP_ABOVE", "1000")
    build_survey(3_000, dim=8)
    assert any((home / "surveys" / SURVEY / "images.zarr" / "c").iterdir())  # chunks written
    figures = measure_thumbnails(home, boxes=2, http=True)
    assert figures["points"] == 3_000 and figures["boxes"] == 2
    assert figures["count"]["objects_median"] >= 48
    for key in ("first_48_ids", "pngs_48_cold_store", "pngs_48_open_store", "pngs_48_cached",
                "first_page_with_pictures_cold", "http_48_cold_store", "http_48_cached"):  # fmt: skip
        assert figures[key]["n"] >= 1 and figures[key]["p50_ms"] > 0, key
    stages = figures["stages_median_cold_page"]
    assert stages["png_bytes_mean"] > 200  # pictures, not blanks
    assert figures["http_bytes_per_page"] > 48 * 200
