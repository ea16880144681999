"""Every object's neighbours searched by cells (the kNN anomaly scores of big surveys)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from scipy.stats import spearmanr

from backend.latent import cellknn, scorers
from backend.latent.anomaly import AnomalyRanker
from backend.latent.source import ANOMALY_FILE, latent_dir
from backend.latent.synthetic import clustered_embeddings
from backend.latent.vectors import normalize
from backend.survey import Survey


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    x, _ = clustered_embeddings(6000, 32, n_clusters=8, seed=1)
    return x


def _exact(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    unit = normalize(x)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    return index.search(unit, k)


def test_cells_find_the_neighbours_with_the_recall_they_report(vectors: np.ndarray) -> None:
    blas_from = faiss.cvar.distance_compute_blas_threshold
    sims, ids, info = cellknn.cell_knn(vectors, 11, cell_size=64, scheduler="sync")
    assert faiss.cvar.distance_compute_blas_threshold == blas_from  # other searches' unchanged
    _, exact_i = _exact(vectors, 11)
    assert sims.shape == ids.shape == (6000, 11) and (ids >= 0).all()
    assert (ids[:, 0] == np.arange(6000)).all()  # each row is its own nearest
    assert (np.diff(sims, axis=1) <= 0).all()
    # the similarities are exact for the neighbours found
    unit = normalize(vectors)
    rows = np.arange(0, 6000, 97)
    true = np.einsum("nd,nkd->nk", unit[rows], unit[ids[rows]])
    np.testing.assert_allclose(sims[rows], true, atol=1e-5)
    recall = np.mean([len(set(a[1:]) & set(b[1:])) / 10 for a, b in zip(ids, exact_i, strict=True)])
    assert info["method"] == "cells" and info["leaves"] == 6000 // 64
    assert recall >= cellknn.TARGET_RECALL - 0.05  # the whole survey, not the tuning sample
    assert abs(recall - info["recall_at_k"]) < 0.06  # the sampled recall says how good it is
    assert info["probes"] <= info["leaves"] / 3  # far from an exhaustive scan
    assert info["tail_rows"] == 120 and info["tail_probes"] > info["probes"]


def test_a_higher_recall_target_probes_more_cells(vectors: np.ndarray) -> None:
    low = cellknn.cell_knn(vectors, 11, cell_size=64, target_recall=0.5, scheduler="sync")[2]
    high = cellknn.cell_knn(vectors, 11, cell_size=64, target_recall=0.95, scheduler="sync")[2]
    assert low["probes"] < high["probes"] and low["recall_at_k"] < high["recall_at_k"]


def test_big_surveys_get_knn_scores_from_cells_close_to_exact(
    vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scorers, "CELL_KNN_ABOVE", 1000)
    monkeypatch.setattr(cellknn, "CELL_SIZE", 64)
    ranker = AnomalyRanker.fit(vectors, scorers=("knn", "lof"), scheduler="sync")
    knn_info = ranker.scores.attrs["scoring"]["knn"]
    assert knn_info["method"] == "cells" and knn_info["probes"] >= 1
    exact_s, _ = _exact(vectors, 11)
    exact = np.sqrt(np.clip(2 - 2 * exact_s[:, 1:], 0, None)).mean(axis=1)
    got = ranker.scores["knn_raw"].to_numpy()
    assert spearmanr(got, exact)[0] > 0.97
    assert np.all(got >= exact - 1e-4)  # a missed neighbour is a farther one: never lower
    assert len(set(np.argsort(-exact)[:20]) & set(np.argsort(-got)[:60])) >= 18
    top = set(np.argsort(-exact)[:60])  # the top 1%: 44 of 60 the same when measured
    assert len(top & set(np.argsort(-got)[:60])) >= 38  # 35 without the tail's wider search


def test_the_scores_product_of_a_big_survey_says_how_its_neighbours_were_found(
    tiny_survey: Survey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.latent.pipeline import make_scores
    from backend.modelling.imported import EmbeddingsRequest, import_embeddings

    x, _ = clustered_embeddings(len(tiny_survey), 16, n_clusters=3, seed=2)
    np.save(tmp_path / "vectors.npy", x)
    version, _, _ = import_embeddings(
        EmbeddingsRequest(tmp_path / "vectors.npy", "tiny"), activate=True
    )
    monkeypatch.setattr(scorers, "CELL_KNN_ABOVE", 50)  # 150 objects count as a big survey
    monkeypatch.setattr(cellknn, "CELL_SIZE", 16)
    outcome = make_scores("tiny", version.version, scorers=("knn",), scheduler="sync")
    assert any(n.startswith("kNN by cells: ") and "recall@10" in n for n in outcome.notes)
    saved = AnomalyRanker.load(latent_dir("tiny", version.version) / ANOMALY_FILE).scores
    knn = saved.attrs["scoring"]["knn"]  # kept in the scores file
    assert knn["method"] == "cells" and knn["leaves"] == 150 // 16
    assert 0 < knn["recall_at_k"] <= 1 and saved["knn_raw"].notna().all()


def test_a_big_surveys_scores_neither_wait_for_the_index_nor_go_stale_with_it(
    tiny_survey: Survey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.modelling.imported import EmbeddingsRequest, import_embeddings
    from backend.pipeline.kinds import Target
    from backend.pipeline.planner import plan
    from backend.pipeline.runner import ensure

    x, _ = clustered_embeddings(len(tiny_survey), 16, n_clusters=3, seed=2)
    np.save(tmp_path / "vectors.npy", x)
    request = EmbeddingsRequest(tmp_path / "vectors.npy", "tiny")
    version = import_embeddings(request, activate=True)[0].version
    index = Target("index", "tiny", "encoder", version).key
    scores = Target("scores", "tiny", "encoder", version).key
    assert index in plan("tiny", ["index", "scores"]).items[scores].deps  # a small survey's do

    monkeypatch.setattr(scorers, "CELL_KNN_ABOVE", 50)  # 150 objects count as a big survey
    monkeypatch.setattr(cellknn, "CELL_SIZE", 16)
    assert index not in plan("tiny", ["index", "scores"]).items[scores].deps
    ensure("tiny", ["index", "scores"], "sync", params={"scores": {"scorers": ["knn"]}})
    ensure("tiny", ["index"], "sync", params={"index": {"kind": "hnsw"}})  # a rebuilt index
    assert not plan("tiny", ["scores"]).items[scores].todo


def test_leaf_products_are_bitwise_the_same_whatever_faiss_threads() -> None:
    """A Dask worker runs FAISS on one thread; the command process may have two. Multithreaded
    BLAS changes the last bit of a product, so ``sync`` and ``local:2`` scores would differ:
    the leaf search runs on one thread and leaves the caller's setting as it found it."""
    rng = np.random.default_rng(0)
    queries = normalize(rng.standard_normal((600, 128)).astype(np.float32))
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        single = cellknn.knn_products(queries, queries, 6)
        faiss.omp_set_num_threads(2)
        several = cellknn.knn_products(queries, queries, 6)
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
    assert np.array_equal(single[0], several[0]) and np.array_equal(single[1], several[1])
