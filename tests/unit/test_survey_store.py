"""The survey store: atomic writes, lazy reads, catalog access and display renderings."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend.survey import Survey, SurveyError, SurveyWriter, list_surveys
from backend.survey.writer import INCOMING_PREFIX, sweep_stale_incoming
from tests.conftest import make_blobs


def test_round_trip_keeps_pixels_catalog_and_order(tiny_survey: Survey) -> None:
    expected = make_blobs(150)
    assert len(tiny_survey) == 150
    assert tiny_survey.image_shape == (3, 16, 16)
    np.testing.assert_array_equal(tiny_survey.cutout(0), expected[0])
    np.testing.assert_array_equal(tiny_survey.cutout(149), expected[149])
    picked = tiny_survey.cutouts([120, 3, 120, 64])
    np.testing.assert_array_equal(picked, expected[[120, 3, 120, 64]])
    assert tiny_survey.cutouts([]).shape == (0, 3, 16, 16)
    assert list(tiny_survey.catalog.columns[:3]) == ["object_id", "ra", "dec"]
    assert tiny_survey.catalog["size_class"].iloc[7] == "big"


def test_lookup_by_id_and_catalog_rows(tiny_survey: Survey) -> None:
    assert tiny_survey.index_of("tiny-0042") == 42
    np.testing.assert_array_equal(tiny_survey.cutout_by_id("tiny-0042"), tiny_survey.cutout(42))
    rows = tiny_survey.catalog_rows([5, 2])
    assert rows["object_id"].tolist() == ["tiny-0005", "tiny-0002"]
    assert rows["index"].tolist() == [5, 2]
    with pytest.raises(SurveyError, match="unknown object id 'nope'"):
        tiny_survey.index_of("nope")
    with pytest.raises(SurveyError, match="out of range"):
        tiny_survey.cutout(150)
    with pytest.raises(SurveyError, match="out of range"):
        tiny_survey.cutouts([0, -1])


def test_iter_batches_covers_survey_in_order(tiny_survey: Survey) -> None:
    seen = [(start, len(batch)) for start, batch in tiny_survey.iter_batches(64)]
    assert seen == [(0, 64), (64, 64), (128, 22)]


def test_survey_json_records_what_a_reader_needs(tiny_survey: Survey) -> None:
    meta = json.loads((tiny_survey.path / "survey.json").read_text())
    assert meta["name"] == "tiny"
    assert meta["bands"] == ["g", "r", "i"]
    assert meta["image_shape"] == [3, 16, 16]
    assert meta["count"] == 150
    assert meta["pixel_scale"] == 0.2
    assert meta["source"] == "test"
    assert meta["schema_version"] == 1
    assert meta["created"]
    assert meta["display"]["rgb_bands"] == ["i", "r", "g"]


def test_images_are_chunked_by_object_and_compressed(tiny_survey: Survey) -> None:
    assert tiny_survey.images.chunks[1:] == (3, 16, 16)
    assert tiny_survey.images.chunks[0] < len(tiny_survey)
    stored = sum(f.stat().st_size for f in (tiny_survey.path / "images.zarr").rglob("*"))
    assert stored < 150 * 3 * 16 * 16 * 4


def test_thumbnails_are_cached_pngs(tiny_survey: Survey) -> None:
    png = tiny_survey.thumbnail_png(3)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (16, 16) and image.mode == "RGB"
    assert tiny_survey.thumbnail_png(3) is png  # served from the cache
    big = Image.open(io.BytesIO(tiny_survey.thumbnail_png(3, size=64)))
    assert big.size == (64, 64)
    band = Image.open(io.BytesIO(tiny_survey.band_png(3, "r")))
    assert band.mode == "L"
    pixels = np.asarray(image)
    assert pixels.max() > 100, "the galaxy should be visible, not black"
    with pytest.raises(SurveyError, match="no band 'y'"):
        tiny_survey.band_png(3, "y")


def test_nan_and_inf_pixels_are_filled_and_counted(home: Path) -> None:
    images = make_blobs(4, bands=2)
    images[1, 0, 0, :3] = np.nan
    images[2, 1, 5, 5] = np.inf
    with SurveyWriter("bad", ["g", "r"], (16, 16), "test") as writer:
        assert writer.append(images, pd.DataFrame({"object_id": list("abcd")})) == 4
    survey = Survey.open("bad")
    assert np.isfinite(survey.cutouts(range(4))).all()
    assert survey.catalog["n_bad_pixels"].tolist() == [0, 3, 1, 0]
    assert survey.meta.n_nonfinite_pixels == 4
    assert survey.catalog["ra"].isna().all()


def test_missing_ids_are_generated_and_duplicates_refused(home: Path) -> None:
    with SurveyWriter("ids", ["g"], (16, 16), "test") as writer:
        writer.append(make_blobs(3, bands=1), pd.DataFrame({"x": [1, 2, 3]}))
    assert Survey.open("ids").catalog["object_id"].tolist() == [
        "ids-00000000",
        "ids-00000001",
        "ids-00000002",
    ]
    with (
        pytest.raises(SurveyError, match="not unique"),
        SurveyWriter("dupes", ["g"], (16, 16), "test") as writer,
    ):
        writer.append(make_blobs(2, bands=1), pd.DataFrame({"object_id": ["a", "a"]}))
    assert not (home / "surveys" / "dupes").exists()


def test_wrong_shapes_and_counts_are_refused_clearly(home: Path) -> None:
    with SurveyWriter("shape", ["g", "r"], (16, 16), "test") as writer:
        with pytest.raises(SurveyError, match=r"\(7, 3, 16, 16\) do not match \(n, 2, 16, 16\)"):
            writer.append(np.zeros((7, 3, 16, 16)), pd.DataFrame({"x": range(7)}))
        with pytest.raises(SurveyError, match="2 images but 3 catalog rows"):
            writer.append(np.zeros((2, 2, 16, 16)), pd.DataFrame({"x": range(3)}))
        writer.append(np.zeros((1, 2, 16, 16)), pd.DataFrame({"x": [0]}))
    assert len(Survey.open("shape")) == 1


def test_interrupted_write_leaves_no_survey(home: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="disk on fire"),
        SurveyWriter("crash", ["g"], (16, 16), "test") as writer,
    ):
        writer.append(make_blobs(2000, bands=1), pd.DataFrame({"x": range(2000)}))
        raise RuntimeError("disk on fire")
    surveys = home / "surveys"
    assert list(surveys.iterdir()) == []
    assert list_surveys() == []


def test_empty_survey_is_an_error(home: Path) -> None:
    with pytest.raises(SurveyError, match="no objects"), SurveyWriter("void", ["g"], (8, 8), "t"):
        pass
    assert not (home / "surveys" / "void").exists()


def test_existing_survey_is_kept_unless_overwrite(tiny_survey: Survey, home: Path) -> None:
    with pytest.raises(SurveyError, match="already exists"):
        SurveyWriter("tiny", ["g"], (8, 8), "again").__enter__()
    assert len(Survey.open("tiny")) == 150
    with SurveyWriter("tiny", ["g"], (8, 8), "again", overwrite=True) as writer:
        writer.append(np.ones((5, 1, 8, 8)), pd.DataFrame({"x": range(5)}))
    replaced = Survey.open("tiny")
    assert len(replaced) == 5 and replaced.meta.source == "again"
    assert [p.name for p in (home / "surveys").iterdir()] == ["tiny"]


def test_stale_incoming_folders_of_dead_writers_are_swept(home: Path) -> None:
    root = home / "surveys"
    dead = root / f"{INCOMING_PREFIX}x-dead"
    alive = root / f"{INCOMING_PREFIX}y-alive"
    for path, pid in ((dead, 2**22 + 12345), (alive, os.getpid())):
        path.mkdir(parents=True)
        (path / "writer.pid").write_text(str(pid))
    assert sweep_stale_incoming(root) == [dead]
    assert alive.exists() and not dead.exists()


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "", "x" * 65, "spa ce"])
def test_path_tricks_in_survey_names_are_refused(home: Path, name: str) -> None:
    with pytest.raises(SurveyError, match="invalid survey name"):
        Survey.open(name)
    with pytest.raises(SurveyError, match="invalid survey name"):
        SurveyWriter(name, ["g"], (8, 8), "t")


def test_unknown_and_corrupt_surveys_give_clear_errors(tiny_survey: Survey, home: Path) -> None:
    with pytest.raises(SurveyError, match=r"unknown survey 'nope' \(known: tiny\)"):
        Survey.open("nope")
    (tiny_survey.path / "survey.json").write_text("{not json")
    with pytest.raises(SurveyError, match=r"survey\.json: not valid JSON"):
        Survey.open("tiny")
    assert list_surveys() == []


def test_single_band_and_rgb_surveys_render(home: Path) -> None:
    with SurveyWriter("mono", ["r"], (16, 16), "t") as writer:
        writer.append(make_blobs(3, bands=1), pd.DataFrame({"x": range(3)}))
    assert Survey.open("mono").meta.display.mode == "asinh"
    assert Survey.open("mono").rgb(0).shape == (16, 16, 3)
    rgb = np.random.default_rng(0).uniform(0, 1, (2, 3, 16, 16))
    with SurveyWriter("colour", ["R", "G", "B"], (16, 16), "png") as writer:
        writer.append(rgb, pd.DataFrame({"x": range(2)}))
    colour = Survey.open("colour")
    assert colour.meta.display.mode == "linear"
    expected = (np.clip(rgb[1].transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(colour.rgb(1), expected)


def test_single_band_pictures_show_bright_cores_and_faint_outskirts() -> None:
    from backend.survey.meta import DisplaySettings
    from backend.survey.render import to_mono

    yy, xx = np.mgrid[:64, :64] - 31.5
    r = np.hypot(xx, yy)
    noise = np.random.default_rng(0).normal(0, 0.01, r.shape)
    display = DisplaySettings(rgb_bands=["r"], mode="asinh", stretch=0.5, origin="upper")
    for peak in (0.2, 500.0):  # a faint and a very bright exponential disk
        grey = to_mono(peak * np.exp(-r / 6.0) + noise, display).astype(int)
        assert (grey == 255).mean() < 0.01, "the core is saturated"
        assert grey[32, 32] > grey[32, 38] > grey[32, 60], "no gradient from core to outskirts"
        assert np.median(grey[:5, :5]) < 40, "the sky is not dark"
