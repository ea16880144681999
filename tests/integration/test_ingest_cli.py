"""``python -m backend ingest ...`` end to end: exit codes, summary, errors, listed surveys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.cli import main
from backend.survey import Survey
from tests.unit.ingest_helpers import (
    SHARED_HSC,
    blob,
    truncate,
    write_cube,
    write_galaxy10,
    write_pictures,
)


def test_ingest_fits_folder_prints_summary_and_skips(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cutouts"
    folder.mkdir()
    for k in range(3):
        write_cube(folder / f"g{k}.fits", blob(20, 3, seed=k), ["g", "r", "i"], ra=1.0, dec=k)
    truncate(write_cube(folder / "broken.fits", blob(64, 3)))
    code = main(["ingest", "fits", str(folder), "--survey", "cut", "--size", "16", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "ingested 3 objects into survey 'cut' (3x16x16, bands g,r,i)" in out
    assert "skipped 1" in out and "report:" in out
    assert "skipped broken.fits: truncated file" in err
    report = json.loads((home / "surveys" / "cut" / "ingest_report.json").read_text())
    assert report["skipped"][0]["source"] == "broken.fits"
    assert main(["surveys"]) == 0
    assert "cut" in capsys.readouterr().out.split()


def test_ingest_errors_exit_2_with_one_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "fits", str(tmp_path / "nope"), "--survey", "x"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no such file or folder"
    write_pictures(tmp_path / "pics", ["1"], size=16)
    (tmp_path / "cat.csv").write_text("objid,ra\n1,2\n")
    argv = ["ingest", "images", str(tmp_path / "pics"), "--survey", "x"]
    argv += ["--catalog", str(tmp_path / "cat.csv"), "--id-column", "dr7objid"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: catalog ") and "cat.csv has no id column 'dr7objid'" in err
    assert "available columns: objid, ra" in err
    assert not (home / "surveys" / "x").exists()


def test_ingest_images_galaxy10_and_hdf_commands(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pictures(tmp_path / "pics", ["a", "b"], size=24, fmt="JPEG")
    assert (
        main(["ingest", "images", str(tmp_path / "pics"), "--survey", "zoo", "--size", "16"]) == 0
    )
    write_galaxy10(tmp_path / "g10.h5", n=7, size=16)
    argv = ["ingest", "galaxy10", str(tmp_path / "g10.h5"), "--survey", "g10", "--size", "8"]
    assert main([*argv, "--chunk-size", "2"]) == 0
    assert main(["ingest", "hdf", "--survey", "hdf", "--size", "32", "--limit", "40"]) == 0
    capsys.readouterr()
    assert Survey.open("zoo").image_shape == (3, 16, 16)
    assert Survey.open("g10").catalog["label"][1] == "Merging"
    assert len(Survey.open("hdf")) == 40
    assert main(["surveys", "--json"]) == 0
    names = [s["name"] for s in json.loads(capsys.readouterr().out)]
    assert names == ["g10", "hdf", "zoo"]


def test_ingest_fits_with_sky_catalog_option(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    write_cube(folder / "a.fits", blob(16, 2), ra=45.0, dec=10.0)
    (tmp_path / "cat.csv").write_text("RA_deg,Dec_deg,zspec\n45.0001,10.0,0.3\n")
    argv = ["ingest", "fits", str(folder), "--survey", "c", "--catalog", str(tmp_path / "cat.csv")]
    argv += ["--match-radius", "1.0", "--ra-column", "RA_deg", "--dec-column", "Dec_deg"]
    assert main(argv) == 0
    assert '1 of 1 objects matched within 1.0" on the sky' in capsys.readouterr().out
    assert Survey.open("c").catalog["zspec"][0] == pytest.approx(0.3)


def test_ingest_real_shared_hsc_files(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not SHARED_HSC.is_dir():
        pytest.skip(f"shared HSC/HST data not found at {SHARED_HSC}")
    argv = ["ingest", "fits", str(SHARED_HSC), "--survey", "hsc", "--bands", "g,r,i,z,y"]
    assert main(argv) == 0
    assert "skipped Cut_HST.fits: 1 band(s)" in capsys.readouterr().err
    survey = Survey.open("hsc")
    assert survey.bands == ["g", "r", "i", "z", "y"] and len(survey) == 2
