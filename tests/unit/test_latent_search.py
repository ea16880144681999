"""Similarity index: right neighbours (exact, HNSW, IVF), persistence, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.latent.errors import LatentError, MissingProductError
from backend.latent.search import SimilarityIndex, check_k, recall_at_k
from backend.latent.synthetic import clustered_embeddings
from backend.latent.vectors import knn_inner_product, normalize


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray]:
    return clustered_embeddings(3000, dim=32, n_clusters=6, separation=1.0, seed=1)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_neighbours_come_from_the_same_cluster(
    clusters: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    x, labels = clusters
    index = SimilarityIndex.build(x, kind=kind)
    assert index.kind == kind and len(index) == len(x)
    sims, ids = index.search(x[:200], 10)
    assert ids.shape == (200, 10)
    assert (labels[ids] == labels[:200, None]).mean() > 0.99
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # most similar first
    exact = knn_inner_product(normalize(x[:200]), normalize(x), 10)[1]
    assert recall_at_k(ids, exact) >= 0.95


def test_auto_kind_follows_the_thresholds(clusters: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = clusters
    assert SimilarityIndex.build(x).kind == "flat"
    assert SimilarityIndex.build(x, exact_threshold=1000).kind == "hnsw"
    hnsw = SimilarityIndex.build(x, exact_threshold=1000, target_recall=0.99)
    assert hnsw.info["tuned_recall_at_10"] >= 0.99 and hnsw.info["ef_search"] >= 16
    assert SimilarityIndex.build(x, exact_threshold=100, hnsw_threshold=1000).kind == "ivf"


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_index_round_trip(
    clusters: tuple[np.ndarray, np.ndarray], tmp_path: Path, kind: str
) -> None:
    x, _ = clusters
    index = SimilarityIndex.build(x, kind=kind)
    index.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss", "index.json"]
    loaded = SimilarityIndex.load(tmp_path)
    assert loaded.kind == kind and loaded.info == index.info
    np.testing.assert_array_equal(loaded.search(x[:50], 5)[1], index.search(x[:50], 5)[1])
    with pytest.raises(MissingProductError, match="no similarity index"):
        SimilarityIndex.load(tmp_path / "elsewhere")


def test_large_k_and_bad_k(clusters: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = clusters
    index = SimilarityIndex.build(x, kind="hnsw")
    _, ids = index.search(x[0], 2500)
    assert ids.shape == (1, 2500) and len(np.unique(ids)) == 2500
    assert check_k(10_000, 50) == 50  # clipped to what exists
    for bad in (0, -3, 10_001, 2.5, True, "7"):
        with pytest.raises(LatentError, match="k must be"):
            index.search(x[0], bad)


def test_bad_query_vectors_are_refused(clusters: tuple[np.ndarray, np.ndarray]) -> None:
    index = SimilarityIndex.build(clusters[0])
    with pytest.raises(LatentError, match="32"):
        index.search(np.ones(7), 5)
    with pytest.raises(LatentError, match="NaN"):
        index.search(np.full(32, np.nan), 5)
