"""The tiles' pre-aggregated catalog colourings, read one column at a time (issue 12: a 10^8
catalog read whole as pandas took ~15 GB while the tiles were built)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.latent.tiles_product import category_codes, column_categories


def _catalog(n: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    kinds = np.array(["spiral", "elliptical", " ", "", None, "merger"], dtype=object)
    return pd.DataFrame({
        "kind": kinds[rng.integers(0, len(kinds), n)],
        "flag": rng.random(n) > 0.5,
        "cat": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        "name": [f"n{i}" for i in range(n)],  # many-valued: not a colouring
        "mag": rng.normal(20, 1, n),
        "one": "same",  # a single value: not a colouring
    })  # fmt: skip


@pytest.mark.parametrize("col", ["kind", "flag", "cat", "name", "mag", "one"])
def test_each_column_is_coded_as_the_pandas_path_codes_it(tmp_path: Path, col: str):
    frame = _catalog()
    frame.to_parquet(tmp_path / "c.parquet", row_group_size=500)
    column = pq.read_table(tmp_path / "c.parquet", columns=[col]).column(0)
    want = category_codes(pd.read_parquet(tmp_path / "c.parquet")[col])
    got = column_categories(column)
    if want is None:
        assert got is None
    else:
        assert got[1] == want[1]
        np.testing.assert_array_equal(got[0], want[0])


def test_a_column_many_valued_in_its_first_rows_is_not_counted_whole(monkeypatch):
    values = pa.chunked_array([pa.array([f"x{i}" for i in range(100)] + ["a"] * 1000)])
    calls = []
    import backend.latent.tiles_product as tp

    real = tp.pc.unique
    monkeypatch.setattr(tp, "ROW_GROUP", 100)
    monkeypatch.setattr(tp.pc, "unique", lambda c: calls.append(len(c)) or real(c))
    assert column_categories(values) is None
    assert calls == [100]  # only its first rows were looked at
