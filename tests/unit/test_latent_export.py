"""Result tables round-trip through CSV, FITS and VOTable (astropy), mixed columns included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from backend.latent.errors import LatentError
from backend.latent.export import export_table


@pytest.fixture
def results() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "object_id": ["g-1", "g-2", "g-3"],
            "similarity": np.float32([0.99, 0.9, 0.8]),
            "ra": [150.1, 150.2, 150.3],
            "note": [1, "odd", None],  # mixed types
            "n_bad": pd.array([0, None, 2], dtype="Int64"),
            "kind": pd.Categorical(["lens", "", "ring"]),
            "flag": [True, False, True],
        }
    )
    df.attrs["survey"] = "tiny"
    return df


@pytest.mark.parametrize(
    ("name", "fmt"), [("r.csv", "ascii.csv"), ("r.fits", "fits"), ("r.vot", "votable")]
)
def test_round_trip(results: pd.DataFrame, tmp_path: Path, name: str, fmt: str) -> None:
    path = export_table(results, tmp_path / name)
    table = Table.read(path, format=fmt)
    assert table.colnames == list(results.columns)
    assert [str(v) for v in table["object_id"]] == ["g-1", "g-2", "g-3"]
    np.testing.assert_allclose(np.asarray(table["similarity"]), results["similarity"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(table["ra"]), results["ra"])
    assert str(table["note"][1]) == "odd" and str(table["note"][0]) == "1"
    assert table["n_bad"][0] == 0 and np.ma.is_masked(table["n_bad"][1])
    assert str(table["kind"][2]) == "ring"
    assert list(table["rank"]) == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary files left


def test_unknown_suffix_is_refused(results: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(LatentError, match=r"use \.csv, \.fits or \.vot"):
        export_table(results, tmp_path / "r.xlsx")
