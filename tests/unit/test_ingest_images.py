"""PNG/JPEG ingestion: RGB floats in [0, 1], common size, catalog join by file stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend.ingest import IngestError, ingest_images
from backend.survey import Survey
from tests.unit.ingest_helpers import picture, write_pictures


def test_pngs_round_trip_as_linear_rgb(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "png"
    pics = write_pictures(folder, ["1001", "1002", "1003"], size=32)
    report = ingest_images(folder, "png", resize="crop", progress=False)
    survey = Survey.open("png")
    assert report.n_written == 3
    assert survey.bands == ["R", "G", "B"] and survey.image_shape == (3, 32, 32)
    assert survey.meta.display.mode == "linear" and survey.meta.display.origin == "upper"
    stored = survey.cutout_by_id("1002")
    assert stored.min() >= 0.0 and stored.max() <= 1.0
    np.testing.assert_allclose(stored, pics["1002"].transpose(2, 0, 1) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(survey.rgb(1), pics["1002"])  # upper origin: no flip
    assert survey.catalog["file"].tolist() == ["1001.png", "1002.png", "1003.png"]
    assert survey.catalog["ra"].isna().all()


def test_mixed_sizes_and_formats_resample_to_most_common(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    write_pictures(folder, ["a", "b"], size=48, fmt="JPEG")
    write_pictures(folder, ["c"], size=24)
    Image.fromarray(picture(48)[:, :, 0]).save(folder / "grey.png")  # greyscale
    Image.fromarray(np.dstack([picture(48), np.full((48, 48), 128, np.uint8)])).save(
        folder / "alpha.png"
    )
    report = ingest_images(folder, "mixed", size=None, progress=False)
    survey = Survey.open("mixed")
    assert report.n_written == 5 and survey.image_shape == (3, 48, 48)
    grey = survey.cutout_by_id("grey")
    np.testing.assert_array_equal(grey[0], grey[2])
    ingest_images(folder, "small", size=16, progress=False)
    small = Survey.open("small")
    assert small.image_shape == (3, 16, 16)
    pixels = small.cutouts(range(5))
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0


def test_catalog_joined_by_id_column_brings_positions(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    write_pictures(folder, ["1001", "1002", "1003"], size=16)
    csv = tmp_path / "gz.csv"
    pd.DataFrame(
        {
            "dr7objid": [1001, 1003, 9999],
            "ra": [150.1, 150.3, 1.0],
            "dec": [2.1, 2.3, 1.0],
            "t01_smooth": [0.9, 0.2, 0.5],
            "file": ["x", "y", "z"],  # collides with the ingested column
        }
    ).to_csv(csv, index=False)
    report = ingest_images(folder, "gz", catalog=csv, id_column="dr7objid", progress=False)
    cat = Survey.open("gz").catalog.set_index("object_id")
    assert report.catalog["n_matched"] == 2
    assert "2 of 3 objects matched by id column 'dr7objid'" in report.summary()
    assert cat.loc["1001", "ra"] == pytest.approx(150.1)
    assert cat.loc["1003", "t01_smooth"] == pytest.approx(0.2)
    assert np.isnan(cat.loc["1002", "ra"]) and np.isnan(cat.loc["1002", "t01_smooth"])
    assert cat.loc["1001", "file"] == "1001.png" and cat.loc["1001", "file_cat"] == "x"
    assert "dr7objid" not in cat.columns


def test_missing_id_column_names_file_and_column(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    write_pictures(folder, ["1"], size=16)
    csv = tmp_path / "zoo_votes.csv"
    csv.write_text("objid,ra,dec\n1,1,1\n")
    with pytest.raises(IngestError) as info:
        ingest_images(folder, "gz", catalog=csv, id_column="dr7objid", progress=False)
    message = str(info.value)
    assert "zoo_votes.csv" in message and "'dr7objid'" in message
    assert "available columns: objid, ra, dec" in message
    assert not (home / "surveys" / "gz").exists()


def test_sky_match_is_refused_for_pictures(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "p"
    write_pictures(folder, ["1"], size=16)
    (tmp_path / "c.csv").write_text("ra,dec\n1,1\n")
    with pytest.raises(IngestError, match="no sky positions"):
        ingest_images(folder, "p", catalog=tmp_path / "c.csv", match_radius=1.0, progress=False)


def test_broken_pictures_are_skipped(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    write_pictures(folder, ["good"], size=96, fmt="JPEG")
    raw = (folder / "good.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(raw[: int(len(raw) * 0.8)])  # header intact, data cut
    (folder / "stub.jpg").write_bytes(raw[:100])
    (folder / "fake.png").write_bytes(b"not a png at all")
    report = ingest_images(folder, "broken", progress=False)
    reasons = {s.source: s.reason for s in report.skipped}
    assert report.n_written == 1
    assert "not a readable PNG/JPEG" in reasons["fake.png"]
    assert "cannot decode" in reasons["cut.jpg"] and "truncated" in reasons["cut.jpg"]
    assert "truncated" in reasons["stub.jpg"].lower()
