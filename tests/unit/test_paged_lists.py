"""Lists that page: partial selection gives the order of a full sort, page by page, for the
anomaly list (plain and re-ranked, filtered), the Anomalies view and the labelling queue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.active.acquisition import acquisition_scores, next_batch
from backend.latent.anomaly import AnomalyRanker
from backend.latent.paging import RankedList, sort_key, top_order
from backend.survey import Survey


def full_order(values: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """The reference: rows by value, highest first, ties by row, NaN last (a full sort)."""
    rows = np.arange(len(values)) if keep is None else np.flatnonzero(keep)
    key = np.where(np.isnan(values[rows]), np.inf, -values[rows])
    return rows[np.argsort(key, kind="stable")]


def tied_values(n: int, seed: int) -> np.ndarray:
    """Scores with many ties (rounded) and some NaN."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.random(n), 2)
    values[rng.choice(n, n // 20, replace=False)] = np.nan
    return values


@pytest.mark.parametrize("stop", [0, 1, 7, 100, 999, 1000, 5000])
def test_top_order_is_the_head_of_a_full_sort(stop: int) -> None:
    values = tied_values(1000, seed=stop)
    np.testing.assert_array_equal(top_order(sort_key(values), stop), full_order(values)[:stop])


def test_pages_of_a_ranked_list_equal_a_full_sort() -> None:
    values = tied_values(3000, seed=1)
    table = pd.DataFrame({"index": np.arange(3000), "score": values})
    keep = np.random.default_rng(2).random(3000) < 0.7
    for mask in (None, keep):
        ranked = RankedList(table, "score", keep=mask)
        expected = full_order(values, mask)
        assert len(ranked) == len(expected)
        pages = [ranked.page(lo, lo + 48)["index"].to_numpy() for lo in range(0, len(ranked), 48)]
        np.testing.assert_array_equal(np.concatenate(pages), expected)
        for position in (0, 1, 47, 48, len(expected) // 2, len(expected) - 1):
            row = int(expected[position])
            assert ranked.position_of(row) == position
            assert int(ranked.row(position)["index"]) == row
        wanted = np.isin(np.arange(3000), expected[[900, 1200]])
        assert ranked.first_where(wanted) == 900
    assert RankedList(table, "score", keep=keep).position_of(int(np.flatnonzero(~keep)[0])) is None
    ascending = RankedList(table, "score", descending=False)
    key = np.where(np.isnan(values), np.inf, values)
    np.testing.assert_array_equal(
        ascending.page(0, 3000)["index"].to_numpy(), np.argsort(key, kind="stable")
    )


@pytest.fixture(scope="module")
def ranker() -> AnomalyRanker:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (1500, 8)).astype(np.float32)
    x[:10] *= 8  # planted outliers
    ids = np.array([f"obj-{i}" for i in range(len(x))])
    return AnomalyRanker.fit(x, scorers=("iforest", "knn"), object_ids=ids)


def test_anomaly_list_pages_follow_its_rank(ranker: AnomalyRanker) -> None:
    full = ranker.ranking()
    listing = ranker.listing()
    got = pd.concat([listing.page(lo, lo + 100) for lo in range(0, len(ranker), 100)])
    np.testing.assert_array_equal(got["index"].to_numpy(), full["index"].to_numpy())
    pd.testing.assert_frame_equal(ranker.top(25), full.head(25))
    knn = ranker.listing(by="knn").page(0, 40)["index"].to_numpy()
    np.testing.assert_array_equal(knn, full_order(ranker.scores["knn"].to_numpy())[:40])


def test_reranked_list_pages_follow_the_reranked_rank(ranker: AnomalyRanker) -> None:
    interest = pd.DataFrame({"index": [3, 700, 1200], "score": [5, 0, 4]})
    sorted_table = ranker.rerank(interest)
    table = ranker.reranked(interest)
    assert table["index"].tolist() == list(range(len(ranker)))  # row order: nothing sorted
    listing = ranker.listing(table, "final")
    np.testing.assert_array_equal(
        listing.page(0, len(ranker))["index"].to_numpy(), sorted_table["index"].to_numpy()
    )
    unscored = table["interest"].isna().to_numpy()
    hidden = ranker.listing(table, "final", unscored).page(0, len(ranker))["index"]
    assert set(hidden) == set(range(len(ranker))) - {3, 700, 1200}
    assert hidden.tolist() == [i for i in sorted_table["index"] if i not in (3, 700, 1200)]


def test_anomalies_view_shows_pages_of_the_ranking(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.data import load_survey_data
    from app.state import AppState
    from app.views.anomalies import GALLERY_SIZE, AnomaliesView
    from backend.latent.pipeline import make_scores
    from backend.latent.service import clear_cache
    from tests.unit.test_latent_query import add_encoder

    add_encoder(tiny_survey)
    make_scores("tiny")
    clear_cache()
    view = AnomaliesView(data=load_survey_data("tiny"), state=AppState(survey="tiny", user="ana"))
    full = view._ranker.ranking()
    assert [item["index"] for item in view._gallery.items] == full["index"][:GALLERY_SIZE].tolist()
    assert view.current() == int(full["index"].iat[0])
    view.move(5)
    assert view.current() == int(full["index"].iat[5])
    view._jump(int(full["index"].iat[77]))
    assert view.current() == int(full["index"].iat[77])
    view.give(0)  # the candidate shown gets an interest score: the list re-ranks
    scored = int(full["index"].iat[77])
    view.hide_scored.value = True
    assert len(view.candidates) == len(tiny_survey) - 1
    assert view.candidates.position_of(scored) is None
    assert scored not in view._table.value["index"].tolist()


@pytest.mark.parametrize("with_nan", [False, True])
def test_label_queue_batch_is_the_top_of_a_full_sort(with_nan: bool) -> None:
    rng = np.random.default_rng(3)
    n = 4000
    probs = rng.dirichlet([1, 1, 1], n)
    if with_nan:  # rows without a usable prediction come last, by row, after every scored one
        probs[rng.random(n) < 0.99] = np.nan
    predictions = pd.DataFrame({f"p_{c}": probs[:, j] for j, c in enumerate("abc")})
    embeddings = rng.normal(0, 1, (n, 8)).astype(np.float32)
    labelled = rng.random(n) < 0.3
    batch = next_batch(embeddings, predictions, labelled, "margin", 60, diversity="none")
    scores = acquisition_scores(predictions, "margin")
    unlabelled = np.flatnonzero(~labelled)
    key = np.where(np.isnan(scores[unlabelled]), np.inf, -scores[unlabelled])
    expected = unlabelled[np.argsort(key, kind="stable")[:60]]
    np.testing.assert_array_equal(batch, expected)


def test_label_queue_reads_predictions_again_only_when_they_change(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backend.active.queue as queue_module
    from backend.active.queue import LabelQueue
    from backend.labels.store import LabelStore
    from backend.products import write_predictions
    from backend.registry import ModelRegistry
    from tests.unit.test_active import _survey_products, blobs, table

    _survey_products(tiny_survey, blobs(5, 30)[0])
    store = LabelStore()
    ids = tiny_survey.catalog["object_id"].to_numpy()
    store.add("tiny", str(ids[0]), "spiral", user="bob")
    registry = ModelRegistry()
    clf = registry.save(
        "classifier", {}, {"embedding_source": {"kind": "encoder", "version": "v0001"}},
        survey="tiny",
    )  # fmt: skip

    def predict(target: int) -> None:
        bald = np.full(150, 1e-3)
        bald[target] = 1.0
        preds = table(bald)
        preds.insert(0, "object_id", ids)
        write_predictions("tiny", "classifier", clf.version, preds)

    predict(10)
    registry.set_active("tiny", "classifier", clf.version)
    reads = []
    real = queue_module.read_predictions
    monkeypatch.setattr(queue_module, "read_predictions", lambda *a: reads.append(a) or real(*a))
    queue = LabelQueue("tiny", "ana", batch_size=5, store=store, strategy="bald")
    assert queue.next(1) == [str(ids[10])]
    queue.refresh()
    queue.refresh()
    assert len(reads) == 1  # the same product: read once
    predict(20)  # the product remade: the next ranking reads it
    queue.refresh()
    assert len(reads) == 2 and queue.next(1) == [str(ids[20])]
