"""The details panel's emulated ranges come from percentiles stored with the predictions
product (issue 12): showing one object of a big survey reads no column."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.data import SurveyData
from app.detail import emulated_html
from backend.pipeline.storage import write_predictions
from backend.rowtable import RowTable, Source, parquet_columns

N = 5_000


@pytest.fixture
def predictions(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(3)
    table = pd.DataFrame({
        "logmass_mean": rng.normal(10.0, 0.8, N).astype(np.float32),
        "logmass_sigma": rng.gamma(2.0, 0.05, N).astype(np.float32),
        "sfr_mean": np.full(N, np.nan, dtype=np.float32),  # no value anywhere
    })  # fmt: skip
    table.loc[::7, "logmass_mean"] = np.nan
    table.attrs["written_by"] = "test"  # kept, as pandas' to_parquet keeps them
    path = write_predictions("demo", "emulator", "v0001", table, root=tmp_path)
    return path, table


def _paged(path: Path) -> SurveyData:
    table = RowTable([Source(path, {c: c for c in parquet_columns(path)})], N)
    return SurveyData(None, None, {}, table, None, None)  # type: ignore[arg-type]


def test_the_writer_stores_the_percentiles_of_every_emulated_mean(predictions) -> None:
    path, table = predictions
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, table)  # the table itself unchanged
    assert back.attrs == {"written_by": "test"}
    rows = RowTable([Source(path, {c: c for c in table.columns})], N)
    v = table["logmass_mean"].to_numpy(np.float64)
    expected = np.percentile(v[np.isfinite(v)], [1, 99])
    np.testing.assert_allclose(rows.stored_percentiles("logmass_mean"), expected)
    assert rows.stored_percentiles("sfr_mean") is None  # no finite value: nothing stored
    assert rows.stored_percentiles("logmass_sigma") is None  # only the means are drawn on a range


def test_the_details_panel_draws_one_object_without_reading_a_column(predictions) -> None:
    path, table = predictions
    data = _paged(path)
    row = data.table.iloc[[3]].iloc[0]
    before = dict(data.table.reads)
    html = emulated_html(data, row)
    assert data.table.reads["full_columns"] == 0
    assert data.table.reads["groups"] == before["groups"]  # the range read nothing at all
    v = table["logmass_mean"].to_numpy(np.float64)
    lo, hi = np.percentile(v[np.isfinite(v)], [1, 99])
    where = float(np.clip((float(row["logmass_mean"]) - lo) / (hi - lo), 0, 1) * 100)
    shown = re.search(r"lsd-mean' style='left:([0-9.]+)%", html)
    assert shown is not None and float(shown.group(1)) == pytest.approx(where, abs=0.06)


def test_an_older_file_without_percentiles_uses_a_sample_not_the_column(
    predictions, tmp_path: Path
) -> None:
    _, table = predictions
    older = tmp_path / "older.parquet"
    table.to_parquet(older, index=False, row_group_size=500)  # as written before
    data = _paged(older)
    lo, hi = data.percentile_range("logmass_mean")
    assert data.table.reads["full_columns"] == 0 and data.table.reads["groups"] <= 8
    v = table["logmass_mean"].to_numpy(np.float64)
    assert lo == pytest.approx(np.nanpercentile(v, 1), abs=0.1)
    assert hi == pytest.approx(np.nanpercentile(v, 99), abs=0.1)
