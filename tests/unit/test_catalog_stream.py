"""A survey's catalog streamed to disk batch by batch (issue 12: writing 10^8 objects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr

from backend.rowtable import ROW_GROUP
from backend.survey import Survey, SurveyWriter
from backend.survey.catalog_stream import CatalogStream
from backend.survey.ids import id_lookup
from backend.survey.meta import SurveyError
from backend.survey.skycounts import count_pixels, read_sky_counts


def _batches(n: int, size: int, seed: int = 0) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = []
    for lo in range(0, n, size):
        m = min(size, n - lo)
        frame = pd.DataFrame({
            "object_id": [f"o{i}" for i in range(lo, lo + m)],
            "ra": rng.uniform(0, 360, m), "dec": rng.uniform(-60, 60, m),
            "mag": rng.normal(20, 1, m),
        })  # fmt: skip
        out.append(frame)
    return out


def test_a_catalog_of_several_parts_reads_back_as_one_with_even_row_groups(tmp_path: Path):
    n = 2 * ROW_GROUP + 1234
    batches = _batches(n, 40_000)
    batches[1]["label"] = "spiral"  # a column some batches lack is null in the others
    batches[2]["mag"] = batches[2]["mag"].round().astype(int)  # ints meeting floats: floats
    stream = CatalogStream(tmp_path, "s", part_rows=ROW_GROUP)
    for frame in batches:
        stream.append(frame, np.zeros(len(frame), np.int32))
    assert len(list((tmp_path / ".catalog-parts").glob("*.parquet"))) == 2  # written as it went
    stream.finish(tmp_path / "catalog.parquet")
    assert not (tmp_path / ".catalog-parts").exists()

    got = pd.read_parquet(tmp_path / "catalog.parquet")
    want = pd.concat(batches, ignore_index=True)
    assert list(got.columns[:3]) == ["object_id", "ra", "dec"]
    assert got["object_id"].tolist() == want["object_id"].tolist()
    np.testing.assert_allclose(got["mag"].to_numpy(), want["mag"].to_numpy())
    assert got["label"].notna().sum() == len(batches[1])
    assert (got["n_bad_pixels"] == 0).all()
    meta = pq.ParquetFile(tmp_path / "catalog.parquet").metadata
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert sizes == [ROW_GROUP, ROW_GROUP, 1234]

    lookup = id_lookup(tmp_path / "catalog.parquet")
    assert lookup.stored
    assert lookup.rows_of(["o0", f"o{n - 1}", "o70000", "nope"]).tolist() == [0, n - 1, 70000, -1]
    sky = read_sky_counts(tmp_path / "catalog.parquet", n)
    whole = count_pixels(want["ra"].to_numpy(), want["dec"].to_numpy())
    assert np.array_equal(sky.pixels, whole.pixels) and np.array_equal(sky.counts, whole.counts)


def test_an_id_repeated_in_another_part_is_refused_by_name(tmp_path: Path):
    batches = _batches(ROW_GROUP + 10, 30_000)
    batches[-1].loc[0, "object_id"] = "o5"  # also row 5 of the first part
    stream = CatalogStream(tmp_path, "s", part_rows=ROW_GROUP)
    for frame in batches:
        stream.append(frame, np.zeros(len(frame), np.int32))
    with pytest.raises(SurveyError, match=r"not unique \(1 repeats, e.g. o5\)"):
        stream.finish(tmp_path / "catalog.parquet")


def test_ids_for_some_batches_only_are_refused(tmp_path: Path):
    stream = CatalogStream(tmp_path, "s")
    stream.append(pd.DataFrame({"object_id": ["a"], "ra": [1.0]}), np.zeros(1, np.int32))
    with pytest.raises(SurveyError, match="object_id column and others do not"):
        stream.append(pd.DataFrame({"ra": [2.0]}), np.zeros(1, np.int32))


def test_a_column_whose_types_cannot_join_is_named(tmp_path: Path):
    stream = CatalogStream(tmp_path, "s", part_rows=ROW_GROUP)
    first = pd.DataFrame({"object_id": [f"a{i}" for i in range(ROW_GROUP)], "z": 1.5})
    stream.append(first, np.zeros(ROW_GROUP, np.int32))
    stream.append(pd.DataFrame({"object_id": ["b"], "z": ["high"]}), np.zeros(1, np.int32))
    with pytest.raises(SurveyError, match="catalog column 'z'"):
        stream.finish(tmp_path / "catalog.parquet")


def test_the_writer_stores_pictures_in_few_shard_files(tmp_path: Path):
    """10,000 8x8 pictures in 64-object chunks were 157 chunk files (10^8: 1.6 million files and
    their folders); sharded, they are one file per 16 MB of pixels."""
    rng = np.random.default_rng(1)
    images = rng.normal(size=(10_000, 1, 8, 8)).astype(np.float32)
    with SurveyWriter("sharded", ["g"], (8, 8), "test", root=tmp_path) as writer:
        for lo in range(0, 10_000, 3_000):
            block = images[lo : lo + 3_000]
            writer.append(block, pd.DataFrame({"ra": np.zeros(len(block))}))
    folder = tmp_path / "sharded" / "images.zarr"
    chunk_files = [p for p in folder.rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(chunk_files) == 1
    assert zarr.open_array(str(folder), mode="r").chunks == (64, 1, 8, 8)
    survey = Survey(tmp_path / "sharded")
    rows = np.array([9_999, 0, 4_321])
    assert np.array_equal(survey.cutouts(rows), images[rows])
    assert survey.catalog["object_id"].tolist()[:2] == ["sharded-00000000", "sharded-00000001"]


def test_ids_sharing_a_hash_are_compared_as_text(tmp_path: Path, monkeypatch):
    """Distinct ids whose hashes collide (a coarse hash here) are accepted; a real repeat among
    them is still found."""
    import backend.survey.catalog_stream as stream_module

    monkeypatch.setattr(stream_module, "hash_ids", lambda ids: np.asarray(
        [hash(str(i)) % 7 for i in ids], dtype=np.uint64))  # fmt: skip
    frame = _batches(1_000, 1_000)[0]
    stream = CatalogStream(tmp_path / "a", "s")
    (tmp_path / "a").mkdir()
    stream.append(frame, np.zeros(len(frame), np.int32))
    stream.finish(tmp_path / "a" / "catalog.parquet")  # 1,000 ids on 7 hashes: no repeat

    frame.loc[999, "object_id"] = "o17"
    (tmp_path / "b").mkdir()
    stream = CatalogStream(tmp_path / "b", "s")
    stream.append(frame, np.zeros(len(frame), np.int32))
    with pytest.raises(SurveyError, match=r"\(1 repeats, e.g. o17\)"):
        stream.finish(tmp_path / "b" / "catalog.parquet")
