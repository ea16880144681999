"""FITS cutout ingestion: three layouts, band names, WCS positions, sizes, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from backend.ingest import IngestError, ingest_fits
from backend.ingest.report import REPORT_FILE
from backend.survey import Survey
from tests.unit.ingest_helpers import (
    SHARED_HSC,
    blob,
    truncate,
    write_cube,
    write_extensions,
    write_image,
)


def _reason(report, source: str) -> str:  # type: ignore[no-untyped-def]
    return next(s.reason for s in report.skipped if s.source == source)


def test_cubes_keep_pixels_bands_and_wcs_centre(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cubes"
    folder.mkdir()
    data = [blob(24, 3, seed=k) for k in range(3)]
    for k, d in enumerate(data):
        write_cube(
            folder / f"gal{k}.fits", d, ["g", "r", "i"], ra=150 + k, dec=2.0 + k, OBJECT=f"o{k}"
        )
    report = ingest_fits(folder, "cubes", progress=False)
    survey = Survey.open("cubes")
    assert report.n_written == 3 and report.n_skipped == 0
    assert survey.bands == ["g", "r", "i"] and survey.image_shape == (3, 24, 24)
    np.testing.assert_array_equal(survey.cutout(1), data[1])
    cat = survey.catalog
    assert cat["object_id"].tolist() == ["gal0", "gal1", "gal2"]
    np.testing.assert_allclose(cat["ra"], [150, 151, 152], atol=1e-9)
    np.testing.assert_allclose(cat["dec"], [2, 3, 4], atol=1e-9)
    assert cat["object"].tolist() == ["o0", "o1", "o2"]
    assert cat["file"].tolist() == ["gal0.fits", "gal1.fits", "gal2.fits"]
    assert set(cat["radec_source"]) == {"wcs"}
    assert survey.meta.pixel_scale == pytest.approx(0.2)
    assert survey.meta.display.origin == "lower"
    saved = json.loads((survey.path / REPORT_FILE).read_text())
    assert saved["n_written"] == 3 and saved["skipped"] == []
    assert survey.meta.extra["ingest"]["kind"] == "fits"


def test_one_hdu_per_band_skips_ancillary_extensions(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mef"
    folder.mkdir()
    d = blob(20, 2, seed=1)
    write_extensions(folder / "a.fits", d, ["F606W", "F814W"], ra=53.1, dec=-27.8)
    ingest_fits(folder, "mef", progress=False)
    survey = Survey.open("mef")
    assert survey.bands == ["F606W", "F814W"]
    np.testing.assert_array_equal(survey.cutout(0), d)
    assert survey.catalog["ra"][0] == pytest.approx(53.1)
    assert survey.catalog["dec"][0] == pytest.approx(-27.8)
    assert survey.catalog["object"][0] == "mef-galaxy"  # OBJECT from the primary header


def test_single_band_images_with_filter_and_sexagesimal_ra_dec(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mono"
    folder.mkdir()
    write_image(folder / "x.fits", blob(16, 1)[0], FILTER="r", RA="10:00:00", DEC="+02:30:00")
    write_image(folder / "y.fit", blob(16, 1, seed=2)[0], FILTER="r")
    ingest_fits(folder, "mono", progress=False)
    survey = Survey.open("mono")
    assert survey.bands == ["r"] and survey.meta.display.mode == "asinh"
    cat = survey.catalog.set_index("object_id")
    assert cat.loc["x", "ra"] == pytest.approx(150.0) and cat.loc["x", "dec"] == pytest.approx(2.5)
    assert cat.loc["x", "radec_source"] == "header"
    assert np.isnan(cat.loc["y", "ra"]) and cat.loc["y", "radec_source"] == ""


def test_filter_n_keys_and_band_reordering(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    d = blob(16, 3)
    write_cube(folder / "a.fits", d, ["g", "r", "i"])
    write_cube(folder / "b.fits", d[::-1].copy(), ["i", "r", "g"], band_keys="FILTER")
    write_cube(folder / "c.fits", d, ["u", "g", "r"])  # other bands: skipped
    write_cube(folder / "d.fits", d)  # no names: taken in order
    write_image(folder / "e.fits", d[0])  # one band where most have three
    report = ingest_fits(folder, "mixed", progress=False)
    survey = Survey.open("mixed")
    assert survey.bands == ["g", "r", "i"]
    assert survey.catalog["object_id"].tolist() == ["a", "b", "d"]
    for k in range(3):
        np.testing.assert_array_equal(survey.cutout(k), d)
    assert "differ from the survey's g,r,i" in _reason(report, "c.fits")
    assert "1 band(s)" in _reason(report, "e.fits") and "has 3" in _reason(report, "e.fits")


def test_bands_option_names_unnamed_cubes(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    write_cube(folder / "a.fits", blob(16, 2))
    ingest_fits(folder, "named", bands=["hsc_g", "hsc_r"], progress=False)
    assert Survey.open("named").bands == ["hsc_g", "hsc_r"]
    ingest_fits(folder, "unnamed", progress=False)
    assert Survey.open("unnamed").bands == ["b0", "b1"]
    with pytest.raises(IngestError, match="need 2 distinct names"):
        ingest_fits(folder, "bad", bands=["g"], progress=False)


def test_common_size_by_crop_and_by_resample(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sizes"
    folder.mkdir()
    big, small = blob(40, 2, seed=1), blob(24, 2, seed=2)
    write_cube(folder / "a.fits", blob(32, 2), ra=10.0, dec=0.0)
    write_cube(folder / "b.fits", blob(32, 2, seed=3), ra=10.0, dec=0.0)
    write_cube(folder / "c.fits", big, ra=10.0, dec=0.0)
    write_cube(folder / "d.fits", small, ra=10.0, dec=0.0)
    ingest_fits(folder, "crop", progress=False)  # most common size: 32
    survey = Survey.open("crop")
    assert survey.image_shape == (2, 32, 32)
    np.testing.assert_array_equal(survey.cutout(2), big[:, 4:36, 4:36])
    padded = survey.cutout(3)
    np.testing.assert_array_equal(padded[:, 4:28, 4:28], small)
    assert padded[:, :4].sum() == 0
    assert survey.meta.pixel_scale == pytest.approx(0.2)

    ingest_fits(folder, "zoom", size=16, resize="resample", progress=False)
    survey = Survey.open("zoom")
    assert survey.image_shape == (2, 16, 16)
    np.testing.assert_allclose(  # 32 -> 16 is an exact 2x2 block mean
        survey.cutout(0), blob(32, 2).reshape(2, 16, 2, 16, 2).mean(axis=(2, 4)), rtol=1e-5
    )
    assert survey.meta.pixel_scale == pytest.approx(0.4)  # median over 32, 32, 40, 24 px
    assert survey.cutout(2).max() == pytest.approx(big.max(), rel=0.2)  # brightness kept


def test_nan_and_inf_pixels_are_counted_and_filled(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nan"
    folder.mkdir()
    d = blob(16, 2)
    d[0, 3, 4:9] = np.nan
    d[1, 0, 0] = np.inf
    d[1, 1, 1] = -np.inf
    write_cube(folder / "bad.fits", d)
    write_cube(folder / "good.fits", blob(16, 2, seed=1))
    write_cube(folder / "allnan.fits", np.full((2, 16, 16), np.nan, np.float32))
    report = ingest_fits(folder, "nan", progress=False)
    survey = Survey.open("nan")
    assert report.n_bad_pixels == 7 and report.n_bad_objects == 1
    assert "7 NaN/inf pixels set to 0 in 1 objects" in report.summary()
    assert survey.meta.n_nonfinite_pixels == 7
    cat = survey.catalog.set_index("object_id")
    assert cat.loc["bad", "n_bad_pixels"] == 7 and cat.loc["good", "n_bad_pixels"] == 0
    stored = survey.cutout_by_id("bad")
    assert np.isfinite(stored).all() and stored[0, 3, 4:9].sum() == 0 and stored[1, 0, 0] == 0
    assert "every pixel is NaN" in _reason(report, "allnan.fits")


def test_bad_files_are_skipped_with_their_reason(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    write_cube(folder / "ok.fits", blob(16, 2))
    truncate(write_cube(folder / "truncated.fits", blob(64, 2)))
    (folder / "garbage.fits").write_bytes(b"this is not a FITS file\n" * 200)
    (folder / "empty.fits").write_bytes(b"")
    write_image(folder / "line.fits", np.arange(16, dtype=np.float32))  # 1-D data
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.ones(3))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(folder / "table.fits")
    write_cube(folder / "spectral.fits", np.zeros((100, 4, 4), np.float32))
    (folder / "notes.txt").write_text("ignored")
    report = ingest_fits(folder, "bad", progress=False)
    assert report.n_written == 1 and report.n_inputs == 7
    assert "truncated" in _reason(report, "truncated.fits")
    assert "not a readable FITS file" in _reason(report, "garbage.fits")
    assert "not a readable FITS file" in _reason(report, "empty.fits")
    assert "expected 2-D" in _reason(report, "line.fits")
    assert "no image data" in _reason(report, "table.fits")
    assert "spectral cube" in _reason(report, "spectral.fits")
    assert any("without a FITS suffix" in n for n in report.notes)
    lines = report.skipped_lines()
    assert len(lines) == 6 and all(line.startswith("skipped ") for line in lines)


def test_all_files_bad_is_a_clear_error_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "allbad"
    folder.mkdir()
    (folder / "a.fits").write_bytes(b"junk")
    (folder / "b.fits").write_bytes(b"")
    with pytest.raises(
        IngestError, match=r"(?s)no usable input.*2 skipped.*a\.fits: not a readable FITS"
    ):
        ingest_fits(folder, "allbad", progress=False)
    assert not (home / "surveys" / "allbad").exists()


def test_limit_and_duplicate_stems(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dupes"
    (folder / "sub").mkdir(parents=True)
    write_cube(folder / "a.fits", blob(16, 2))
    write_cube(folder / "sub" / "a.fits.gz", blob(16, 2, seed=1))
    write_cube(folder / "z.fits", blob(16, 2, seed=2))
    ingest_fits(folder, "dupes", progress=False)
    cat = Survey.open("dupes").catalog
    assert cat["object_id"].tolist() == ["a", "a-2", "z"]
    assert cat["file"].tolist() == ["a.fits", "sub/a.fits.gz", "z.fits"]
    report = ingest_fits(folder, "two", limit=2, progress=False)
    assert report.n_written == 2 and len(Survey.open("two")) == 2


def test_real_hsc_cube_gets_its_wcs_position(home: Path) -> None:
    if not (SHARED_HSC / "Cut_HSC.fits").is_file():
        pytest.skip(f"shared HSC/HST data not found at {SHARED_HSC}")
    report = ingest_fits(SHARED_HSC, "hsc", progress=False)
    survey = Survey.open("hsc")
    assert survey.image_shape == (5, 50, 50)
    # Cut_HST.fits is one band where the HSC cube and PSF have five.
    assert [s.source for s in report.skipped] == ["Cut_HST.fits"]
    row = survey.catalog.set_index("object_id").loc["Cut_HSC"]
    header = fits.getheader(SHARED_HSC / "Cut_HSC.fits")
    ra, dec = WCS(header).celestial.pixel_to_world_values(24.5, 24.5)
    assert row["ra"] == pytest.approx(float(ra), abs=1e-9)
    assert row["dec"] == pytest.approx(float(dec), abs=1e-9)
    assert (row["ra"], row["dec"]) == pytest.approx((150.3192, 2.0394), abs=1e-3)  # COSMOS
    assert survey.meta.pixel_scale == pytest.approx(0.168, abs=1e-3)  # HSC pixels
    np.testing.assert_allclose(
        survey.cutout_by_id("Cut_HSC"), fits.getdata(SHARED_HSC / "Cut_HSC.fits"), rtol=1e-6
    )


def test_real_hst_image_alone(home: Path) -> None:
    path = SHARED_HSC / "Cut_HST.fits"
    if not path.is_file():
        pytest.skip(f"shared HSC/HST data not found at {SHARED_HSC}")
    ingest_fits(path, "hst", size=64, resize="resample", bands=["F814W"], progress=False)
    survey = Survey.open("hst")
    assert survey.image_shape == (1, 64, 64) and survey.bands == ["F814W"]
    assert survey.meta.pixel_scale == pytest.approx(0.03 * 250 / 64, rel=1e-3)
    assert survey.catalog["ra"][0] == pytest.approx(150.1, abs=0.5)
