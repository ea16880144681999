"""Galaxy10, Hubble Deep Field and HATS ingestion on dask.distributed: two local workers write
the same survey store, byte for byte, as the synchronous path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import cli
from backend.ingest import pipeline as ingest_pipeline
from backend.pipeline.execution import executor
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs
from tests.unit.ingest_helpers import write_galaxy10

#: The files of a survey store that hold its objects (survey.json names the survey and time).
STORE = ("images.zarr", "catalog.parquet")


def _store(name: str) -> dict[str, bytes]:
    """Every file of survey ``name``'s pixels and catalog, by path within the survey."""
    root = Survey.open(name).path
    files = {}
    for part in STORE:
        top = root / part
        for file in [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file()):
            files[str(file.relative_to(root))] = file.read_bytes()
    return files


def _hats_export(out: Path) -> None:
    """A 150-object survey with sky positions exported as HATS in several partitions."""
    n = 150
    rng = np.random.default_rng(5)
    catalog = pd.DataFrame(
        {
            "object_id": [f"s{i:03d}" for i in range(n)],
            "ra": 150.0 + rng.permutation(n) * 0.5 / n,
            "dec": np.linspace(2.0, 2.5, n),
            "mag_r": np.linspace(18.0, 23.0, n).astype(np.float32),
        }
    )
    with SurveyWriter("sky", ["g", "r", "i"], (16, 16), "test") as writer:
        writer.append(make_blobs(n, seed=7), catalog)
    args = ["export", "--survey", "sky", "--format", "hats", "--out", str(out)]
    options = ["--partition-rows", "40", "--margin-arcsec", "0", "--scheduler", "sync"]
    assert cli.main([*args, *options, "--no-progress"]) == 0


def test_galaxy10_hdf_and_hats_ingestion_with_two_local_workers_equal_sync(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.ingest.galaxy10 import ingest_galaxy10
    from backend.ingest.hats import ingest_hats
    from backend.ingest.hdf import ingest_hdf

    g10 = tmp_path / "g10.h5"
    data = write_galaxy10(g10, n=40, size=16)
    _hats_export(tmp_path / "sky_hats")
    hats_dir = tmp_path / "sky_hats"

    def ingest_all(tag: str, scheduler: object) -> None:
        # partitions: galaxy10 4 x 12 rows (3 chunks of 4 each), hdf 4 x 30 stamps of 32 x 32,
        # hats 10 x 16 objects
        monkeypatch.setattr(ingest_pipeline, "PARTITION_BYTES", 3 * 4 * 3 * 16 * 16 * 4)
        ingest_galaxy10(g10, f"g10{tag}", chunk_size=4, progress=False, scheduler=scheduler)
        monkeypatch.setattr(ingest_pipeline, "PARTITION_BYTES", 30 * 3 * 32 * 32 * 4)
        ingest_hdf(f"hdf{tag}", size=32, limit=100, progress=False, scheduler=scheduler)
        monkeypatch.setattr(ingest_pipeline, "PARTITION_BYTES", 16 * 3 * 16 * 16 * 4)
        ingest_hats(hats_dir, f"hats{tag}", progress=False, scheduler=scheduler)

    ingest_all("sync", "sync")
    with executor("local:2") as ex:
        ingest_all("local", ex)
        assert ex.client is not None and ex.workers == 2  # the partitions ran on the workers

    for kind in ("g10", "hdf", "hats"):
        sync, local = _store(f"{kind}sync"), _store(f"{kind}local")
        assert sorted(local) == sorted(sync) and len(sync) > 2, kind
        assert all(local[f] == sync[f] for f in sync), kind
    g10_survey = Survey.open("g10local")
    assert len(g10_survey) == 40 and g10_survey.catalog["h5_index"].tolist() == list(range(40))
    np.testing.assert_allclose(
        np.asarray(g10_survey.images[:]), data["images"].transpose(0, 3, 1, 2) / 255.0, rtol=1e-6
    )
    hdf = Survey.open("hdflocal")
    assert len(hdf) == 100 and hdf.catalog["flux"].is_monotonic_decreasing
    assert np.ptp(np.asarray(hdf.images[:])) > 0
    sky, back = Survey.open("sky"), Survey.open("hatslocal")
    np.testing.assert_array_equal(np.asarray(back.images[:]), np.asarray(sky.images[:]))
    pd.testing.assert_frame_equal(back.catalog, sky.catalog)


def test_ingest_hats_takes_the_scheduler_option(home: Path, tmp_path: Path) -> None:
    _hats_export(tmp_path / "sky_hats")
    argv = ["ingest", "hats", str(tmp_path / "sky_hats"), "--survey", "back", "--no-progress"]
    assert cli.main([*argv, "--scheduler", "sync"]) == 0
    assert len(Survey.open("back")) == 150
    assert cli.main([*argv, "--overwrite", "--scheduler", "local:0"]) == 2
