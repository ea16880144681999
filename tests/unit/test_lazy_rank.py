"""Re-ranking by interest scores no longer sorts the survey to fill ``rank``: the list pages by
partial selection and one shown object's rank is counted; both agree with a full sort."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.latent.anomaly import AnomalyRanker
from backend.latent.paging import rank_of


def test_rank_of_is_the_stable_full_sort_rank_with_ties_and_nan() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 20, 500).astype(np.float32)  # many ties
    values[rng.choice(500, 25, replace=False)] = np.nan
    order = np.argsort(np.where(np.isnan(values), np.inf, -values), kind="stable")
    expected = np.empty(500, np.int64)
    expected[order] = np.arange(1, 501)
    assert [rank_of(values, r) for r in range(500)] == expected.tolist()


def test_the_reranked_list_and_rank_shown_are_those_of_the_full_sort() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    x[300:] = x[:100]  # duplicates: tied scores
    ids = np.array([f"o{i:03d}" for i in range(400)])
    ranker = AnomalyRanker.fit(x, object_ids=ids, scorers=("knn",), k=5)
    interest = pd.DataFrame({"index": [3, 50, 120, 399], "score": [5.0, 0.0, 4.0, 1.0]})

    full = ranker.rerank(interest)  # the whole survey sorted, with its rank column
    assert full["rank"].tolist() == list(range(1, 401))
    lazy = ranker.reranked(interest)
    assert "rank" not in lazy.columns, "no survey-wide sort to fill rank"
    listing = ranker.listing(lazy, "final")
    assert listing.page(0, 400)["object_id"].tolist() == full["object_id"].tolist()
    assert listing.page(48, 96)["object_id"].tolist() == full["object_id"][48:96].tolist()
    by_id = dict(zip(full["object_id"], full["rank"], strict=True))
    for row in (0, 3, 50, 120, 250, 300, 399):
        assert ranker.rank_of(lazy, row) == by_id[ids[row]]

    plain = ranker.reranked(interest.iloc[:0])  # no interest: final is anomaly, rank kept
    assert ranker.rank_of(plain, 7) == int(ranker.scores["rank"].iat[7])
