"""Anomaly ranking: planted outliers first, scorers combined, feedback moves the ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.latent.anomaly import AnomalyRanker, RerankParams
from backend.latent.errors import LatentError, MissingProductError
from backend.latent.scorers import local_outlier_factor, rank_normalise

N_NORMAL, N_OUT = 2000, 15


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """4 equal Gaussian clusters in 16-d plus outliers in random directions (label -1)."""
    rng = np.random.default_rng(4)
    centres = rng.normal(0, 3.0, (4, 16))
    labels = np.repeat(np.arange(4), N_NORMAL // 4)
    x = centres[labels] + rng.normal(0, 1.0, (N_NORMAL, 16))
    outliers = rng.normal(0, 1.0, (N_OUT, 16))
    outliers *= 12.0 / np.linalg.norm(outliers, axis=1, keepdims=True)
    x = np.vstack([x, outliers]).astype(np.float32)
    return x, np.r_[labels, np.full(N_OUT, -1)]


@pytest.fixture(scope="module")
def ranker(data: tuple[np.ndarray, np.ndarray]) -> AnomalyRanker:
    ids = np.array([f"obj-{i}" for i in range(len(data[0]))])
    return AnomalyRanker.fit(data[0], scorers=("iforest", "knn", "lof"), object_ids=ids)


def test_rank_normalise() -> None:
    np.testing.assert_allclose(rank_normalise(np.array([3.0, 1.0, 2.0])), [1.0, 0.0, 0.5])
    out = rank_normalise(np.array([5.0, np.nan, 1.0]))
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == 0.0


def test_lof_is_one_inside_a_uniform_grid() -> None:
    ids = np.array([[1, 2], [0, 2], [0, 1]])
    dist = np.ones((3, 2))
    np.testing.assert_allclose(local_outlier_factor(dist, ids), 1.0)


def test_planted_outliers_rank_first(ranker: AnomalyRanker) -> None:
    top = ranker.ranking().head(N_OUT)
    assert (top["index"] >= N_NORMAL).all()
    assert ranker.scorers == ["iforest", "knn", "lof"]
    for name in ranker.scorers:  # every scorer finds them on its own, too
        assert ranker.scores[name].to_numpy()[N_NORMAL:].min() > 0.9
        assert f"{name}_raw" in ranker.scores
    assert top["rank"].tolist() == list(range(1, N_OUT + 1))


def test_reconstruction_error_joins_and_missing_values_use_the_rest(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, _ = data
    recon = np.zeros(len(x), np.float32)
    recon[5] = 100.0  # a normal-looking object the autoencoder cannot reconstruct
    recon[7] = np.nan
    ranker = AnomalyRanker.fit(x, recon_error=recon, scorers=("knn",))
    assert ranker.scorers == ["recon", "knn"]
    row = ranker.scores.iloc[7]
    assert row["anomaly"] == pytest.approx(row["knn"])
    assert ranker.scores["recon"].iloc[5] == 1.0
    with pytest.raises(LatentError, match="reconstruction errors for"):
        AnomalyRanker.fit(x, recon_error=recon[:10])
    with pytest.raises(LatentError, match="unknown scorers"):
        AnomalyRanker.fit(x, scorers=("magic",))


@pytest.mark.parametrize("regressor", ["knn", "forest"])
def test_feedback_lifts_objects_like_a_5_and_sinks_objects_like_a_0(
    data: tuple[np.ndarray, np.ndarray], ranker: AnomalyRanker, regressor: str
) -> None:
    _, labels = data
    liked, boring = np.flatnonzero(labels == 0)[:3], np.flatnonzero(labels == 1)[:3]
    interest = pd.DataFrame(
        {"object_id": [f"obj-{i}" for i in [*liked, *boring]], "score": [5, 5, 5, 0, 0, 0]}
    )
    before = ranker.scores.set_index("index")["rank"]
    after = ranker.rerank(interest, RerankParams(regressor=regressor)).set_index("index")
    like_cluster = np.setdiff1d(np.flatnonzero(labels == 0), liked)
    boring_cluster = np.setdiff1d(np.flatnonzero(labels == 1), boring)
    assert after["rank"][like_cluster].mean() < 0.6 * before[like_cluster].mean()
    assert after["rank"][boring_cluster].mean() > 1.2 * before[boring_cluster].mean()
    assert after.loc[liked[0], "interest"] == 5 and np.isnan(after.loc[like_cluster[0], "interest"])
    assert {"interest_pred", "label_distance", "final"} <= set(after.columns)


@pytest.mark.parametrize("regressor", ["knn", "forest"])
def test_one_5_on_an_ordinary_object_does_not_fill_the_top_25(
    data: tuple[np.ndarray, np.ndarray], ranker: AnomalyRanker, regressor: str
) -> None:
    """Issue 13: one interest score of 5 on an ordinary galaxy filled the top 25 with its
    look-alikes; the anomalies stay on top until more scores agree."""
    _, labels = data
    scores = ranker.scores.set_index("index")
    cluster = np.flatnonzero(labels == 2)
    ordinary = int(
        cluster[np.argsort(scores.loc[cluster, "anomaly"].to_numpy())[len(cluster) // 2]]
    )
    plain = set(ranker.ranking().head(25)["index"])
    one = pd.DataFrame({"index": [ordinary], "score": [5]})
    top = ranker.rerank(one, RerankParams(regressor=regressor)).head(25)
    pushed_in = set(top["index"]) - plain  # was 6: every slot the outliers left
    assert len(pushed_in) <= 4, f"one score put {len(pushed_in)} look-alikes in the top 25"
    assert set(np.flatnonzero(labels == -1)) <= set(top["index"])
    several = pd.DataFrame({"index": cluster[:5], "score": [5] * 5})
    lifted = ranker.rerank(several, RerankParams(regressor=regressor)).head(25)
    assert len(set(lifted["index"]) - plain) > len(pushed_in)  # agreeing scores still lift


def test_astronomaly_neighbour_score_only_lowers(
    data: tuple[np.ndarray, np.ndarray], ranker: AnomalyRanker
) -> None:
    _, labels = data
    boring = np.flatnonzero(labels == 1)[:3]
    interest = pd.DataFrame({"index": boring, "score": [0, 0, 0]})
    after = ranker.rerank(interest, RerankParams(method="astronomaly")).set_index("index")
    anomaly = ranker.scores.set_index("index")["anomaly"]
    assert (after["final"] <= anomaly.loc[after.index] + 1e-6).all()
    boring_cluster = np.flatnonzero(labels == 1)
    before = ranker.scores.set_index("index")["rank"]
    assert after["rank"][boring_cluster].mean() > before[boring_cluster].mean()


def test_no_feedback_keeps_the_anomaly_order(ranker: AnomalyRanker) -> None:
    same = ranker.rerank(pd.DataFrame({"index": [], "score": []}))
    assert same["index"].tolist() == ranker.ranking()["index"].tolist()


def test_bad_feedback_is_refused(ranker: AnomalyRanker) -> None:
    with pytest.raises(LatentError, match="between 0 and 5"):
        ranker.rerank(pd.DataFrame({"index": [1], "score": [7]}))
    with pytest.raises(LatentError, match="'score' column"):
        ranker.rerank(pd.DataFrame({"index": [1]}))
    with pytest.raises(LatentError, match="unknown re-ranking method"):
        ranker.rerank(pd.DataFrame({"index": [1], "score": [3]}), RerankParams(method="x"))


def test_scores_round_trip(ranker: AnomalyRanker, tmp_path: Path) -> None:
    path = tmp_path / "anomaly.parquet"
    ranker.save(path)
    loaded = AnomalyRanker.load(path, ranker.embeddings)
    pd.testing.assert_frame_equal(loaded.scores, ranker.scores)
    assert loaded.scores.attrs["scorers"] == ["iforest", "knn", "lof"]
    assert len(loaded.rerank(pd.DataFrame({"index": [3], "score": [5]}))) == len(ranker)
    with pytest.raises(MissingProductError, match="python -m backend score"):
        AnomalyRanker.load(tmp_path / "none.parquet")
