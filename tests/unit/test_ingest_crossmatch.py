"""Catalog joins: by sky position within a radius (and not beyond), by id, option errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from backend.ingest import CatalogJoin, IngestError, ingest_fits
from backend.ingest.crossmatch import catalog_join, id_strings
from backend.survey import Survey
from tests.unit.ingest_helpers import blob, write_cube

ARCSEC = 1 / 3600


def _objects() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "object_id": ["a", "b", "c", "d"],
            "ra": [150.0, 150.01, 150.02, np.nan],
            "dec": [2.0, 2.0, 2.0, np.nan],
            "file": ["a.fits", "b.fits", "c.fits", "d.fits"],
        }
    )


def test_sky_join_matches_within_radius_not_beyond(tmp_path: Path) -> None:
    cos = np.cos(np.radians(2.0))
    pd.DataFrame(
        {
            "RA": [150.0 + 0.6 * ARCSEC / cos, 150.01, 150.02 + 1.6 * ARCSEC / cos, 10.0],
            "DEC": [2.0, 2.0 + 0.9 * ARCSEC, 2.0, 10.0],
            "z": [0.1, 0.2, 0.3, 0.4],
            "file": ["x", "y", "z", "w"],
        }
    ).to_csv(tmp_path / "cat.csv", index=False)
    join = CatalogJoin.by_sky(tmp_path / "cat.csv", 1.0)
    assert (join.ra_column, join.dec_column) == ("RA", "DEC")  # guessed
    out = join.apply(_objects())
    assert out["z"].tolist()[:2] == [0.1, 0.2] and out["z"][2:].isna().all()
    np.testing.assert_allclose(out["match_sep_arcsec"][:2], [0.6, 0.9], atol=1e-3)
    assert out["file"].tolist() == ["a.fits", "b.fits", "c.fits", "d.fits"]
    assert out["file_cat"].tolist()[:2] == ["x", "y"]
    assert join.n_matched == 2 and join.n_objects == 4
    wider = CatalogJoin.by_sky(tmp_path / "cat.csv", 2.0).apply(_objects())
    assert wider["z"][2] == pytest.approx(0.3)


def test_sky_join_reads_fits_tables_and_sexagesimal(tmp_path: Path) -> None:
    Table({"RAJ2000": [150.0], "DEJ2000": [2.0], "mag": [21.5]}).write(tmp_path / "c.fits")
    assert CatalogJoin.by_sky(tmp_path / "c.fits", 1.0).apply(_objects())["mag"][0] == 21.5
    (tmp_path / "s.csv").write_text("ra_h,dec_d,name\n10:00:00.0,+02:00:00,hms\n")
    join = CatalogJoin.by_sky(tmp_path / "s.csv", 1.0, ra_column="ra_h", dec_column="dec_d")
    assert join.apply(_objects())["name"][0] == "hms"


def test_id_join_text_ids_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "ids.csv").write_text("objid,v\n007,1\nb,2\nb,3\n,4\n,5\n")
    join = CatalogJoin.by_id(tmp_path / "ids.csv", "objid")
    out = join.apply(pd.DataFrame({"object_id": ["007", "b", "7"], "ra": np.nan, "dec": np.nan}))
    assert out["v"].tolist()[:2] == [1, 2] and np.isnan(out["v"][2])  # leading zeros kept
    assert join.n_matched == 2 and "repeated ids" in join.notes[0]
    assert id_strings(pd.Series([1001.0, np.nan])).tolist() == ["1001", ""]


def test_join_option_errors(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("id,x\n1,2\n")
    with pytest.raises(IngestError, match="say how to join"):
        catalog_join(tmp_path / "c.csv")
    with pytest.raises(IngestError, match="need --catalog"):
        catalog_join(None, id_column="id")
    with pytest.raises(IngestError, match="not both"):
        catalog_join(tmp_path / "c.csv", id_column="id", match_radius=1.0)
    with pytest.raises(IngestError, match=r"no RA column found.*available columns: id, x"):
        catalog_join(tmp_path / "c.csv", match_radius=1.0)
    with pytest.raises(IngestError, match=r"c\.csv has no RA column 'RA'"):
        catalog_join(tmp_path / "c.csv", match_radius=1.0, ra_column="RA", dec_column="x")
    with pytest.raises(IngestError, match=r"catalog .*missing\.csv: no such file"):
        catalog_join(tmp_path / "missing.csv", id_column="id")


def test_fits_ingest_joined_by_sky_position(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cutouts"
    folder.mkdir()
    for k in range(3):
        write_cube(folder / f"g{k}.fits", blob(16, 2, seed=k), ra=30.0 + k / 60, dec=-5.0)
    write_cube(folder / "nowcs.fits", blob(16, 2))
    cos = np.cos(np.radians(5.0))
    pd.DataFrame(
        {
            "ra": [30.0 + 0.3 * ARCSEC / cos, 30.0 + 1 / 60 + 3 * ARCSEC / cos],
            "dec": -5.0,
            "zphot": [0.5, 0.7],
        }
    ).to_csv(tmp_path / "photoz.csv", index=False)
    report = ingest_fits(
        folder, "joined", catalog=tmp_path / "photoz.csv", match_radius=1.0, progress=False
    )
    cat = Survey.open("joined").catalog.set_index("object_id")
    assert report.catalog["n_matched"] == 1
    assert '1 of 4 objects matched within 1.0" on the sky' in report.summary()
    assert cat.loc["g0", "zphot"] == pytest.approx(0.5)
    assert cat[["zphot"]].drop(index="g0")["zphot"].isna().all()


def test_sky_join_needs_positions(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nowcs"
    folder.mkdir()
    write_cube(folder / "a.fits", blob(16, 2))
    (tmp_path / "c.csv").write_text("ra,dec\n1,1\n")
    with pytest.raises(IngestError, match="none of the 1 FITS files has a position"):
        ingest_fits(folder, "x", catalog=tmp_path / "c.csv", match_radius=1.0, progress=False)
