"""Shared fixtures: an isolated data root and a tiny synthetic survey."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.survey import Survey, SurveyWriter
from tests.pg_cluster import PgCluster, cluster_unavailable, external_cluster, start_cluster

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


# -- the database under test ---------------------------------------------------------------------
# Tests in these modules (and any marked ``both_databases``) that use ``home`` run twice: on the
# default SQLite file in the data root and on a fresh PostgreSQL database (a throwaway cluster
# started once per session, or the server of LATENTSKY_TEST_PG_URL).
DATABASES = ("sqlite", "postgresql")
BOTH_DATABASES = {
    "tests.unit.test_labels",
    "tests.unit.test_labels_io",
    "tests.unit.test_label_api",
    "tests.unit.test_latent_feedback",
    "tests.integration.test_jobs",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: run each test on SQLite and on PostgreSQL (``database``)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both = metafunc.module.__name__ in BOTH_DATABASES or metafunc.definition.get_closest_marker(
        "both_databases"
    )
    if both and "database" in metafunc.fixturenames:
        metafunc.parametrize("database", DATABASES, indirect=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL server for the session (skips the test when none can be had)."""
    url = os.environ.get("LATENTSKY_TEST_PG_URL")
    if url:
        yield external_cluster(url)
        return
    why = cluster_unavailable()
    if why is not None:
        pytest.skip(why)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh empty PostgreSQL database for one test, dropped afterwards."""
    from backend.db import dispose_engine

    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        dispose_engine(url)
        pg_cluster.drop_database(url)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """``sqlite`` (default) or ``postgresql`` where the test is parametrised over both."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, database: str
) -> Path:
    """A fresh LATENTSKY_HOME for one test (and its own PostgreSQL database on ``postgresql``)."""
    root = tmp_path / "home"
    monkeypatch.setenv("LATENTSKY_HOME", str(root))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    if database == "postgresql":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pg_url"))
    return root


def make_blobs(n: int, bands: int = 3, size: int = 16, seed: int = 0) -> np.ndarray:
    """(n, bands, size, size) float32 Gaussian blobs of varying width and colour plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    widths = rng.uniform(1.0, 4.0, n)
    colours = rng.uniform(0.5, 2.0, (n, bands))
    blob = np.exp(-(xx**2 + yy**2)[None] / (2 * widths[:, None, None] ** 2))
    images = colours[:, :, None, None] * blob[:, None] * 10.0
    return (images + rng.normal(0, 0.1, images.shape)).astype(np.float32)


@pytest.fixture
def tiny_survey(home: Path) -> Survey:
    """A 150-object, 3-band, 16x16 survey named 'tiny' in the test's data root."""
    images = make_blobs(150)
    catalog = pd.DataFrame(
        {
            "object_id": [f"tiny-{i:04d}" for i in range(150)],
            "ra": np.linspace(150.0, 150.5, 150),
            "dec": np.linspace(2.0, 2.5, 150),
            "size_class": np.where(np.arange(150) % 2, "big", "small"),
        }
    )
    with SurveyWriter("tiny", ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(images[:100], catalog.iloc[:100])
        writer.append(images[100:], catalog.iloc[100:])
    return Survey.open("tiny")
