"""The Hubble Deep Field shipped with scikit-image, cut into galaxy stamps with sep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.ingest import ingest_hdf
from backend.ingest.hdf import cut_stamps, load_hdf_picture
from backend.survey import Survey


def test_hdf_gives_hundreds_of_real_galaxies(home: Path) -> None:
    report = ingest_hdf("hdf", progress=False)
    survey = Survey.open("hdf")
    assert len(survey) >= 100 and report.n_written == len(survey)
    assert survey.image_shape == (3, 64, 64) and survey.bands == ["R", "G", "B"]
    assert survey.meta.display.mode == "linear" and survey.meta.display.origin == "upper"
    cat = survey.catalog
    for col in ("x", "y", "flux", "a", "b", "theta"):
        assert cat[col].notna().all(), col
    assert cat["ra"].isna().all() and cat["dec"].isna().all()
    assert cat["flux"].is_monotonic_decreasing and not cat["edge"].any()
    picture, _ = load_hdf_picture()
    x, y = round(cat["x"][0]), round(cat["y"][0])
    np.testing.assert_allclose(survey.cutout(0), picture[:, y - 32 : y + 32, x - 32 : x + 32])
    assert any("crosses the picture edge" in n for n in report.notes)


def test_stamps_near_the_edge_are_zero_padded_and_flagged() -> None:
    picture = np.ones((3, 20, 30), np.float32)
    stamps, edge = cut_stamps(picture, np.array([0.0, 15.0]), np.array([0.0, 10.0]), 8)
    assert stamps.shape == (2, 3, 8, 8) and edge.tolist() == [True, False]
    assert stamps[0, :, :4, :4].sum() == 0 and stamps[0, :, 4:, 4:].min() == 1
    assert stamps[1].min() == 1


def test_hdf_options(home: Path) -> None:
    report = ingest_hdf("hdf32", size=32, threshold=8.0, limit=25, keep_edges=True, progress=False)
    survey = Survey.open("hdf32")
    assert len(survey) == 25 and survey.image_shape == (3, 32, 32)
    assert report.options["threshold"] == pytest.approx(8.0)
