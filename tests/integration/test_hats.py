"""``export --format hats`` and ``ingest hats``: a survey as a HATS catalog that LSDB reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import zarr

from backend import cli
from backend.hats import cutouts as hats_cutouts
from backend.products import open_embeddings, product_dir, write_predictions
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs
from tests.unit.test_latent_query import add_encoder

N = 150
BAD_OBJECT = 7  # has NaN pixels, so n_bad_pixels must survive the round trip


def _write_survey(name: str, ra: np.ndarray | None, dec: np.ndarray | None = None) -> Survey:
    images = make_blobs(N, seed=3)
    images[BAD_OBJECT, 1, :2, :3] = np.nan
    columns: dict[str, object] = {
        "object_id": [f"{name}-{i:04d}" for i in range(N)],
        "mag_r": np.linspace(18.0, 23.0, N).astype(np.float32),
        "kind": np.where(np.arange(N) % 3, "disk", "bulge"),
    }
    if ra is not None:
        columns |= {"ra": ra, "dec": np.linspace(2.0, 2.5, N) if dec is None else dec}
    with SurveyWriter(name, ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(images[:90], pd.DataFrame(columns).iloc[:90])
        writer.append(images[90:], pd.DataFrame(columns).iloc[90:])
    return Survey.open(name)


@pytest.fixture
def sky(home: Path) -> Survey:
    """150 objects along a 0.5-degree line (not in sky order: rows are shuffled on the sky),
    an active encoder with embeddings, map and anomaly scores, and a classifier's predictions."""
    ra = 150.0 + 0.5 * np.random.default_rng(1).permutation(N) / N
    survey = _write_survey("sky", ra)
    version = add_encoder(survey)
    folder = product_dir("sky", "encoder", version)
    np.save(folder / "map.npy", np.random.default_rng(2).normal(size=(N, 2)).astype(np.float32))
    scores = pd.DataFrame(
        {"index": np.arange(N), "object_id": survey.catalog["object_id"], "anomaly": np.arange(N)}
    )
    scores.iloc[::-1].to_parquet(folder / "anomaly.parquet")  # keyed by id, not by position
    registry = ModelRegistry()
    classifier = registry.save("classifier", {"w": torch.zeros(1)}, {}, survey="sky")
    registry.set_active("sky", "classifier", classifier.version)
    predictions = pd.DataFrame(
        {
            "object_id": survey.catalog["object_id"],
            "p_disk": np.linspace(0, 1, N),
            "pred_class": np.where(np.arange(N) % 2, "disk", "bulge"),
        }
    )
    write_predictions("sky", "classifier", classifier.version, predictions)
    return survey


def _export(out: Path, *extra: str, survey: str = "sky") -> int:
    args = ["export", "--survey", survey, "--format", "hats", "--out", str(out)]
    extra = extra if "--scheduler" in extra else (*extra, "--scheduler", "sync")
    return cli.main([*args, "--partition-rows", "60", "--no-progress", *extra])


def _check_cutouts(out: Path, survey: Survey) -> None:
    """Each partition's cutouts sit in an array of their own, where cutout_row points."""
    import hats

    main = out / survey.name
    for pixel in hats.read_hats(main).get_healpix_pixels():
        name = f"Norder={pixel.order}/Dir={pixel.dir}/Npix={pixel.pixel}.parquet"
        part = pq.read_table(main / "dataset" / name).to_pandas()
        files = part["cutout_file"].unique()
        assert list(files) == [
            f"cutouts/order={pixel.order}/dir={pixel.dir}/npix={pixel.pixel}.zarr"
        ]
        stored = zarr.open_array(str(main / files[0]), mode="r")
        assert stored.shape[0] == len(part)
        assert sorted(part["cutout_row"]) == list(range(len(part)))
        np.testing.assert_array_equal(
            stored[:][part["cutout_row"].to_numpy()],
            survey.cutouts(part["survey_index"].to_numpy()),
        )
        assert (np.diff(part["_healpix_29"].to_numpy()) >= 0).all()


def test_export_then_ingest_gives_back_the_survey(
    sky: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sky_hats"
    assert _export(out) == 0
    summary = capsys.readouterr().out
    assert (
        "exported survey 'sky': 150 objects in" in summary and "encoder v0001 embeddings" in summary
    )

    import hats
    from hats.io.validation import is_valid_catalog

    assert is_valid_catalog(out / "sky", strict=True)
    catalog = hats.read_hats(out).main_catalog
    assert len(catalog.get_healpix_pixels()) > 1 and catalog.catalog_info.total_rows == N
    _check_cutouts(out, sky)

    assert cli.main(["ingest", "hats", str(out), "--survey", "back", "--no-progress"]) == 0
    assert "ingested 150 objects into survey 'back'" in capsys.readouterr().out
    back = Survey.open("back")
    pd.testing.assert_frame_equal(back.catalog, sky.catalog)
    np.testing.assert_array_equal(np.asarray(back.images[:]), np.asarray(sky.images[:]))
    assert back.catalog["n_bad_pixels"].iloc[BAD_OBJECT] == 6
    assert (back.bands, back.meta.pixel_scale, back.meta.display) == (
        sky.bands,
        sky.meta.pixel_scale,
        sky.meta.display,
    )
    assert back.meta.n_nonfinite_pixels == sky.meta.n_nonfinite_pixels == 6


def test_products_are_columns_named_by_model_version(sky: Survey, tmp_path: Path) -> None:
    out = tmp_path / "sky_hats"
    assert _export(out) == 0
    table = pq.read_table(out / "sky" / "dataset").to_pandas().sort_values("survey_index")
    rows = table["survey_index"].to_numpy()
    assert np.array_equal(rows, np.arange(N))
    embeddings = np.stack(table["encoder_v0001_embedding"].to_numpy())
    np.testing.assert_array_equal(embeddings, open_embeddings("sky", "encoder", "v0001"))
    coords = np.load(product_dir("sky", "encoder", "v0001") / "map.npy")
    np.testing.assert_array_equal(table["encoder_v0001_map_x"], coords[:, 0])
    np.testing.assert_array_equal(table["encoder_v0001_map_y"], coords[:, 1])
    np.testing.assert_array_equal(table["encoder_v0001_anomaly"], np.arange(N))
    np.testing.assert_allclose(table["classifier_v0001_p_disk"], np.linspace(0, 1, N))
    assert table["classifier_v0001_pred_class"].iloc[1] == "disk"
    assert "encoder_v0001_index" not in table and "classifier_v0001_object_id" not in table


def test_lsdb_opens_the_export_and_crossmatches_it(sky: Survey, tmp_path: Path) -> None:
    import lsdb

    out = tmp_path / "sky_hats"
    assert _export(out) == 0
    survey = lsdb.open_catalog(out)
    assert len(survey.get_healpix_pixels()) > 1
    assert {"object_id", "encoder_v0001_embedding", "cutout_file"} <= set(survey.columns)

    # another catalog: every 10th object 0.1 arcsec away, plus sources far from any object
    picked = sky.catalog.iloc[::10]
    jitter = 0.1 / 3600
    other = pd.DataFrame(
        {
            "source_id": [f"gaia-{i}" for i in range(len(picked))] + ["far-1", "far-2"],
            "ra": np.r_[
                picked["ra"].to_numpy() + jitter / np.cos(np.radians(picked["dec"])), 10.0, 200.0
            ],
            "dec": np.r_[picked["dec"].to_numpy(), -30.0, 45.0],
        }
    )
    lsdb.from_dataframe(
        other, ra_column="ra", dec_column="dec", margin_threshold=None
    ).write_catalog(tmp_path / "other", progress_bar=False)
    matched = survey.crossmatch(
        lsdb.open_catalog(tmp_path / "other"),
        radius_arcsec=1.0,
        n_neighbors=1,
        suffixes=("", "_other"),
        suffix_method="overlapping_columns",
    ).compute()
    pairs = dict(zip(matched["source_id"], matched["object_id"], strict=True))
    assert pairs == {f"gaia-{i}": oid for i, oid in enumerate(picked["object_id"])}
    np.testing.assert_allclose(matched["_dist_arcsec"], 0.1, atol=1e-3)


def test_export_refuses_a_survey_without_positions(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_survey("flat", ra=None)
    out = tmp_path / "flat_hats"
    assert _export(out, survey="flat") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        err.startswith("error: survey flat: column 'ra' has no valid value") and "150 of 150" in err
    )
    assert not out.exists()


def test_a_failed_export_leaves_nothing_and_an_earlier_one_stays(
    sky: Survey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exports" / "sky_hats"
    written = []

    def failing(task: hats_cutouts.GatherTask) -> int:
        written.append(task)
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        return task.count

    with monkeypatch.context() as patch:
        patch.setattr(hats_cutouts, "gather_partition", failing)
        assert _export(out) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []  # no half export, no hidden temporary folder

    assert _export(out) == 0
    before = (out / "sky" / "latentsky.json").read_text()
    assert _export(out) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "sky" / "latentsky.json").read_text() == before
    assert _export(out, "--overwrite") == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["sky_hats"]


def test_ingest_refuses_what_is_not_a_hats_catalog_with_cutouts(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import lsdb

    plain = tmp_path / "plain"
    plain.mkdir()
    pd.DataFrame({"ra": [1.0], "dec": [2.0]}).to_parquet(plain / "table.parquet")
    no_cutouts = tmp_path / "no_cutouts"
    frame = pd.DataFrame({"object_id": ["a", "b"], "ra": [10.0, 10.1], "dec": [-5.0, -5.1]})
    lsdb.from_dataframe(
        frame, ra_column="ra", dec_column="dec", margin_threshold=None
    ).write_catalog(no_cutouts, progress_bar=False)
    cases = [
        (tmp_path / "missing", "missing: no such folder"),
        (plain, "plain: not a HATS catalog"),
        (no_cutouts, "has no cutouts (no 'cutout_file' / 'cutout_row' column)"),
    ]
    for path, message in cases:
        assert cli.main(["ingest", "hats", str(path), "--survey", "x", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err
    assert not (home / "surveys" / "x").exists()


def test_two_dask_workers_write_the_same_catalog_and_cutouts(
    sky: Survey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ranges and gathers of 64 objects: several tasks of each pass, so the cluster starts
    monkeypatch.setattr(hats_cutouts, "_RANGE_BYTES", 64 * 4 * 3 * 16 * 16)
    assert _export(tmp_path / "sync") == 0
    assert _export(tmp_path / "local", "--scheduler", "local:2") == 0
    sync_table = pq.read_table(tmp_path / "sync" / "sky" / "dataset")
    assert pq.read_table(tmp_path / "local" / "sky" / "dataset").equals(sync_table)
    files = sorted({str(f) for f in sync_table.column("cutout_file").to_pylist()})
    assert len(files) > 1
    for relpath in files:
        np.testing.assert_array_equal(
            zarr.open_array(str(tmp_path / "local" / "sky" / relpath), mode="r")[:],
            zarr.open_array(str(tmp_path / "sync" / "sky" / relpath), mode="r")[:],
        )


def test_cutouts_are_shuffled_through_many_ranges_and_blocks(
    sky: Survey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranges of 16 objects, chunks of 8: every partition gathers from many sorted ranges."""
    monkeypatch.setattr(hats_cutouts, "CHUNK_OBJECTS", 8)
    monkeypatch.setattr(hats_cutouts, "_SHARD_CHUNK", 4)
    monkeypatch.setattr(hats_cutouts, "_RANGE_BYTES", 16 * 4 * 3 * 16 * 16)
    assert _export(tmp_path / "small") == 0
    _check_cutouts(tmp_path / "small", sky)


def test_cutouts_kept_in_another_folder_are_found_with_images(
    sky: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sky_hats"
    assert _export(out) == 0
    elsewhere = tmp_path / "pixels"
    elsewhere.mkdir()
    (out / "sky" / "cutouts").rename(elsewhere / "cutouts")
    args = ["ingest", "hats", str(out), "--survey", "back", "--no-progress"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "cannot open cutout array" in err
    assert cli.main([*args, "--images", str(elsewhere)]) == 0
    np.testing.assert_array_equal(np.asarray(Survey.open("back").images[:]), sky.images[:])


def test_the_margin_cache_finds_matches_across_partition_edges(home: Path, tmp_path: Path) -> None:
    import lsdb

    ra, dec = np.linspace(150.0, 150.5, N), np.linspace(2.0, 2.5, N)
    # two objects either side of ra 45, dec 0, a corner of HEALPix base pixels 4 and 5
    ra[:2], dec[:2] = [44.99995, 45.001], 0.0
    _write_survey("edge", ra, dec)
    source = pd.DataFrame({"source_id": ["s"], "ra": [45.00005], "dec": [0.0]})
    lsdb.from_dataframe(
        source, ra_column="ra", dec_column="dec", margin_threshold=None
    ).write_catalog(tmp_path / "other", progress_bar=False)

    def match(out: Path) -> list[str]:
        survey = lsdb.open_catalog(out)
        matched = (
            lsdb.open_catalog(tmp_path / "other")
            .crossmatch(
                survey, radius_arcsec=1.0, n_neighbors=1, suffix_method="overlapping_columns"
            )
            .compute()
        )
        return matched["object_id"].tolist()

    assert _export(tmp_path / "margin", survey="edge") == 0
    table = pq.read_table(tmp_path / "margin" / "edge" / "dataset").to_pandas()
    first_two = table.set_index("object_id").loc[["edge-0000", "edge-0001"], "cutout_file"]
    assert first_two.nunique() == 2  # in different partitions
    from hats.io.validation import is_valid_catalog

    assert is_valid_catalog(tmp_path / "margin" / "edge_5arcs", strict=True)
    assert match(tmp_path / "margin") == ["edge-0000"]  # 0.36 arcsec away, across the edge
    assert _export(tmp_path / "bare", "--margin-arcsec", "0", survey="edge") == 0
    assert match(tmp_path / "bare") == []  # without a margin the match is lost
