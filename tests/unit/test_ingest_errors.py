"""Fatal input problems are clear errors; an interrupted ingestion leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.ingest import IngestError, ingest_fits, ingest_images
from backend.ingest import fits as fits_ingest
from backend.ingest.resize import crop_or_pad, resample
from backend.survey import Survey, SurveyError, SurveyWriter, list_surveys
from tests.unit.ingest_helpers import blob, write_cube, write_pictures


def _survey_dir_entries(home: Path) -> list[str]:
    surveys = home / "surveys"
    return sorted(p.name for p in surveys.iterdir()) if surveys.exists() else []


def test_nonexistent_path_and_empty_folder(home: Path, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"nowhere: no such file or folder"):
        ingest_fits(tmp_path / "nowhere", "x", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match=r"empty: no FITS files .*the folder is empty"):
        ingest_fits(tmp_path / "empty", "x", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("x")
    with pytest.raises(IngestError, match=r"no PNG/JPEG files .*1 other files there"):
        ingest_images(tmp_path / "other", "x", progress=False)
    assert _survey_dir_entries(home) == []


def test_bad_names_and_existing_surveys_fail_before_reading(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    write_cube(folder / "a.fits", blob(16, 2))
    with pytest.raises(SurveyError, match="invalid survey name"):
        ingest_fits(folder, "../escape", progress=False)
    ingest_fits(folder, "c", progress=False)
    with pytest.raises(SurveyError, match="already exists"):
        ingest_fits(folder, "c", progress=False)
    write_cube(folder / "b.fits", blob(16, 2, seed=1))
    ingest_fits(folder, "c", overwrite=True, progress=False)
    assert len(Survey.open("c")) == 2


def test_interrupted_ingestion_leaves_no_survey_and_no_temp_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(6):
        write_cube(folder / f"g{k}.fits", blob(16, 2, seed=k))
    calls = {"n": 0}
    original = fits_ingest.read_pixels

    def flaky(cutout):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the pixels pass
        return original(cutout)

    monkeypatch.setattr(fits_ingest, "read_pixels", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest_fits(folder, "many", progress=False)
    assert _survey_dir_entries(home) == []  # no survey, no .incoming-* folder
    assert list_surveys() == []


def test_writer_failure_midway_leaves_nothing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pics"
    write_pictures(folder, [f"p{k}" for k in range(5)], size=16)
    original = SurveyWriter.append

    def failing(self: SurveyWriter, images: np.ndarray, catalog) -> int:  # type: ignore[no-untyped-def]
        original(self, images, catalog)
        raise OSError("disk full")

    monkeypatch.setattr(SurveyWriter, "append", failing)
    with pytest.raises(OSError, match="disk full"):
        ingest_images(folder, "pics", progress=False)
    assert _survey_dir_entries(home) == []


def test_resize_helpers_keep_centre_and_nan_mask() -> None:
    image = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    cropped = crop_or_pad(image, (3, 3))
    np.testing.assert_array_equal(cropped, image[:, 1:4, 2:5])
    padded = crop_or_pad(image, (9, 9))
    np.testing.assert_array_equal(padded[:, 2:7, 1:8], image)
    assert np.all(crop_or_pad(cropped, (5, 7))[:, 1:4, 2:5] == cropped)
    holes = np.ones((1, 8, 8), np.float32)
    holes[0, :4, :4] = np.nan
    small = resample(holes, (4, 4))
    assert np.isnan(small[0, :2, :2]).all() and np.isfinite(small[0, 2:, 2:]).all()
    odd = resample(np.ones((3, 10, 10), np.float32), (7, 7))
    np.testing.assert_allclose(odd, 1.0, rtol=1e-5)
