"""The 2-D map: landmarks cover the space, seeded fits repeat, new points land by neighbours."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from backend.latent.errors import LatentError, MissingProductError
from backend.latent.landmarks import quotas, select_landmarks
from backend.latent.projection import LatentMap, MapParams
from backend.latent.synthetic import clustered_embeddings
from backend.latent.vectors import normalize

PARAMS = MapParams(n_landmarks=240, seed=3)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered_embeddings(900, dim=24, n_clusters=4, separation=1.0, seed=2)


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray]) -> LatentMap:
    return LatentMap.fit(data[0], PARAMS)


def test_quotas_cover_small_cells() -> None:
    q = quotas(np.array([1000, 10, 1, 0, 5000]), 100)
    assert q.sum() == 100 and q[1] >= 1 and q[2] == 1 and q[3] == 0
    assert quotas(np.array([3, 2]), 100).tolist() == [3, 2]


def test_landmarks_include_a_small_cluster(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, labels = data
    rare = np.flatnonzero(labels == np.bincount(labels).argmin())[:8]
    keep = np.flatnonzero(labels != labels[rare[0]])
    x_small = np.vstack([x[keep], x[rare]])  # 8 objects of a fourth kind among ~700
    chosen = select_landmarks(normalize(x_small), 60, seed=0, n_cells=8)
    assert len(chosen) == 60 and len(np.unique(chosen)) == 60
    assert (chosen >= len(keep)).any()


def test_map_is_reproducible_with_a_seed(
    data: tuple[np.ndarray, np.ndarray], fitted: LatentMap
) -> None:
    x, labels = data
    assert fitted.coords.shape == (len(x), 2) and np.isfinite(fitted.coords).all()
    assert len(fitted.landmark_indices) == PARAMS.n_landmarks
    again = LatentMap.fit(x, PARAMS)
    np.testing.assert_array_equal(again.coords, fitted.coords)
    other = LatentMap.fit(x, MapParams(n_landmarks=240, seed=4))
    assert not np.array_equal(other.coords, fitted.coords)
    # clusters stay apart: each object is nearer its own cluster's centre on the map
    centres = np.stack([fitted.coords[labels == c].mean(axis=0) for c in range(4)])
    nearest = np.linalg.norm(fitted.coords[:, None] - centres[None], axis=2).argmin(axis=1)
    assert (nearest == labels).mean() > 0.95


def test_new_points_land_near_their_neighbours(
    data: tuple[np.ndarray, np.ndarray], fitted: LatentMap
) -> None:
    x, _ = data
    rng = np.random.default_rng(0)
    picks = rng.choice(len(x), 20, replace=False)
    new = x[picks] + rng.normal(0, 0.01, (20, x.shape[1])).astype(np.float32)
    placed = fitted.place(new)
    extent = np.ptp(fitted.coords, axis=0).max()
    assert np.linalg.norm(placed - fitted.coords[picks], axis=1).max() < 0.05 * extent
    started = time.perf_counter()
    for row in new:
        fitted.place(row)
    assert (time.perf_counter() - started) / len(new) < 0.01  # <= 10 ms per new object
    with pytest.raises(LatentError, match="24"):
        fitted.place(np.ones(5))
    with pytest.raises(LatentError, match="NaN"):
        fitted.place(np.full(24, np.nan))


def test_map_round_trip(
    data: tuple[np.ndarray, np.ndarray], fitted: LatentMap, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    assert {"map.npy", "map_landmarks.npz", "map.json"} <= {p.name for p in tmp_path.iterdir()}
    loaded = LatentMap.load(tmp_path)
    np.testing.assert_array_equal(np.asarray(loaded.coords), fitted.coords)
    assert loaded.params == PARAMS
    np.testing.assert_array_equal(loaded.place(data[0][:7]), fitted.place(data[0][:7]))
    assert np.load(tmp_path / "map.npy").dtype == np.float32
    with pytest.raises(MissingProductError, match="python -m backend map"):
        LatentMap.load(tmp_path / "none")


def test_too_few_objects() -> None:
    with pytest.raises(LatentError, match="at least 10 objects"):
        LatentMap.fit(np.ones((5, 3), np.float32))
