"""Galaxy10 DECaLS HDF5 ingestion: chunked reads, class names, downsampling, bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from backend.ingest import IngestError, ingest_galaxy10
from backend.ingest.galaxy10 import CLASS_NAMES
from backend.survey import Survey
from tests.unit.ingest_helpers import write_galaxy10


def test_round_trip_with_labels_and_positions(home: Path, tmp_path: Path) -> None:
    data = write_galaxy10(tmp_path / "g10.h5", n=12, size=16)
    report = ingest_galaxy10(tmp_path / "g10.h5", "g10", progress=False)
    survey = Survey.open("g10")
    assert report.n_written == 12 and survey.image_shape == (3, 16, 16)
    assert survey.bands == ["R", "G", "B"] and survey.meta.display.mode == "linear"
    np.testing.assert_allclose(survey.cutout(5), data["images"][5].transpose(2, 0, 1) / 255.0)
    cat = survey.catalog
    assert cat["label"].tolist() == [CLASS_NAMES[a] for a in data["ans"]]
    assert cat["label"][9] == "Edge-on with Bulge" and cat["label"][2] == "Round Smooth"
    np.testing.assert_allclose(cat["ra"], data["ra"])
    np.testing.assert_allclose(cat["redshift"], data["redshift"])
    assert cat["object_id"][3] == "g10-00003" and cat["h5_index"][3] == 3
    assert survey.meta.pixel_scale == pytest.approx(0.262)


def test_images_are_read_chunk_by_chunk(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_galaxy10(tmp_path / "g10.h5", n=10, size=16)
    reads: list[int] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: object) -> object:
        out = original(self, key)
        if self.name == "/images":
            reads.append(len(out))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ingest_galaxy10(tmp_path / "g10.h5", "chunked", chunk_size=3, progress=False)
    assert reads == [3, 3, 3, 1]
    assert len(Survey.open("chunked")) == 10


def test_downsampling_and_limit(home: Path, tmp_path: Path) -> None:
    data = write_galaxy10(tmp_path / "g10.h5", n=10, size=16)
    ingest_galaxy10(tmp_path / "g10.h5", "small", size=8, limit=4, progress=False)
    survey = Survey.open("small")
    assert len(survey) == 4 and survey.image_shape == (3, 8, 8)
    expected = data["images"][2].transpose(2, 0, 1).reshape(3, 8, 2, 8, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(survey.cutout(2), expected / 255.0, rtol=1e-5)
    assert survey.meta.pixel_scale == pytest.approx(0.524)


def test_sky_join_on_galaxy10_positions(home: Path, tmp_path: Path) -> None:
    data = write_galaxy10(tmp_path / "g10.h5", n=6, size=16)
    csv = tmp_path / "specz.csv"
    csv.write_text(
        "RAJ2000,DEJ2000,zspec\n"
        f"{data['ra'][1]},{data['dec'][1] + 0.5 / 3600},0.11\n"  # 0.5" away: matched
        f"{data['ra'][4]},{data['dec'][4] + 5 / 3600},0.44\n"  # 5" away: not matched
    )
    report = ingest_galaxy10(
        tmp_path / "g10.h5", "g10x", catalog=csv, match_radius=1.0, progress=False
    )
    cat = Survey.open("g10x").catalog
    assert report.catalog["n_matched"] == 1
    assert cat["zspec"][1] == pytest.approx(0.11) and cat["zspec"].isna().sum() == 5
    assert cat["match_sep_arcsec"][1] == pytest.approx(0.5, abs=0.01)


def test_wrong_files_are_clear_errors(home: Path, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        ingest_galaxy10(tmp_path / "missing.h5", "x", progress=False)
    (tmp_path / "fake.h5").write_bytes(b"definitely not hdf5")
    with pytest.raises(IngestError, match="not an HDF5 file"):
        ingest_galaxy10(tmp_path / "fake.h5", "x", progress=False)
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["pixels"] = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(IngestError, match=r"no 'images' dataset \(found: pixels\)"):
        ingest_galaxy10(tmp_path / "other.h5", "x", progress=False)
    with h5py.File(tmp_path / "flat.h5", "w") as h5:
        h5["images"] = np.zeros((2, 16, 16), np.uint8)
    with pytest.raises(IngestError, match=r"shape \(2, 16, 16\); expected \(N, H, W, 3\)"):
        ingest_galaxy10(tmp_path / "flat.h5", "x", progress=False)
    assert not (home / "surveys" / "x").exists()
