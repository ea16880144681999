"""``likeness``: objects near the anomalies a person labelled rise in the stored ranking, from
labels outside the held-out rows only, never an object's own label."""

from __future__ import annotations

import numpy as np
import pytest

from backend.latent.anomaly import AnomalyRanker
from backend.latent.combination import (
    CANDIDATES,
    LIKENESS_CANDIDATES,
    MIN_POSITIVES,
    average_precision,
)
from backend.latent.errors import LatentError
from backend.latent.likeness import likeness


def test_likeness_is_the_share_of_labelled_neighbours_never_the_own_label() -> None:
    positive = np.array([True, True, False, False, True])
    ids = np.array(
        [
            [1, 4, 2],  # two of three neighbours labelled
            [1, 1, 0],  # the search's gap filled with the row itself: only row 0 counts
            [3, -1, 4],  # a missing neighbour (-1) counts as not labelled
            [2, 2, 2],
            [4, 0, 1],
        ]
    )
    expected = np.array([2, 1, 1, 0, 2], dtype=np.float32) / 3
    np.testing.assert_allclose(likeness(ids, positive), expected)
    np.testing.assert_allclose(likeness(ids, positive, chunk=2), expected)  # chunks agree
    np.testing.assert_array_equal(likeness(ids, np.zeros(5, dtype=bool)), np.zeros(5))
    with pytest.raises(LatentError, match="kNN graph of 4 rows"):
        likeness(ids, positive[:4])


def _clustered(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """600 objects in 8-d: 40 anomalies in one tight cluster inside the crowd (so no density
    scorer finds them; their pixel scores are ordinary), half of them labelled outside the
    held-out rows, the other half held out."""
    rng = np.random.default_rng(seed)
    n = 600
    embeddings = rng.normal(size=(n, 8)).astype(np.float32)
    anomalies = np.arange(40)
    embeddings[anomalies] = rng.normal(size=8) * 0.6 + 0.15 * rng.normal(size=(40, 8))
    pixels = {name: rng.normal(size=n) for name in ("sharpness", "asymmetry")}
    positive = np.zeros(n, dtype=bool)
    positive[anomalies] = True
    held_out = np.zeros(n, dtype=bool)
    held_out[anomalies[::2]] = True  # the val part: half the anomalies ...
    held_out[400:] = True  # ... and ordinary objects
    return embeddings, pixels, positive, held_out


def _fit(embeddings: np.ndarray, pixels: dict, positive: np.ndarray, held_out: np.ndarray):
    return AnomalyRanker.fit(
        embeddings, scorers=("knn", "sharpness", "asymmetry"), combine_with="max",
        pixels=pixels, labelled=(positive, held_out),
    ).scores  # fmt: skip


def test_objects_near_the_labelled_anomalies_rise_measured_on_held_out_ones() -> None:
    embeddings, pixels, positive, held_out = _clustered()
    table = _fit(embeddings, pixels, positive, held_out)
    choice = table.attrs["combination"]
    assert "likeness" in choice["formula"]
    assert set(choice["average_precision"]) == {*CANDIDATES, *LIKENESS_CANDIDATES}
    val = held_out
    chosen = average_precision(table["anomaly"].to_numpy()[val], positive[val])
    plain = AnomalyRanker.fit(
        embeddings, scorers=("knn", "sharpness", "asymmetry"), combine_with="max", pixels=pixels
    ).scores["anomaly"].to_numpy()  # fmt: skip
    default = average_precision(plain[val], positive[val])
    # the held-out anomalies never fed likeness, yet it finds them: near the labelled ones
    assert chosen > 0.4 and default < 0.15, (chosen, default)  # val base rate 0.09


def test_held_out_labels_never_feed_likeness_and_few_labels_add_none() -> None:
    embeddings, pixels, positive, held_out = _clustered()
    table = _fit(embeddings, pixels, positive, held_out)
    relabelled = positive & ~held_out  # the held-out anomalies unlabelled: nothing changes
    again = _fit(embeddings, pixels, relabelled, held_out)
    np.testing.assert_array_equal(table["likeness_raw"], again["likeness_raw"])
    assert table.attrs["combination"]["formula"] == again.attrs["combination"]["formula"]
    few = positive & ~held_out & (np.arange(len(positive)) < 2 * (MIN_POSITIVES - 1))
    assert int(few.sum()) == MIN_POSITIVES - 1
    table = _fit(embeddings, pixels, few, held_out)
    assert "likeness" not in table and table.attrs["combination"]["average_precision"] == {}
    with pytest.raises(LatentError, match="likeness reads the survey's labelled anomalies"):
        AnomalyRanker.fit(embeddings, scorers=("knn", "likeness"))


def test_own_labels_left_out_the_choice_does_not_reward_reading_them() -> None:
    """Labelled anomalies scattered at random (no structure): were an object's own label
    counted, every labelled object would have likeness >= 1/k and the likeness formulas an
    average precision near 1 on the rows the choice reads; left out, they earn about the base
    rate, as the unsupervised formulas do."""
    rng = np.random.default_rng(5)
    n = 800
    embeddings = rng.normal(size=(n, 8)).astype(np.float32)
    pixels = {name: rng.normal(size=n) for name in ("sharpness", "asymmetry")}
    positive = rng.random(n) < 0.05
    held_out = rng.random(n) < 0.2
    table = _fit(embeddings, pixels, positive, held_out)
    scores = table.attrs["combination"]["average_precision"]
    base = float(positive[~held_out].mean())
    assert all(scores[f] < 3 * base for f in LIKENESS_CANDIDATES), (scores, base)
    own = table["likeness_raw"].to_numpy()[positive & ~held_out]
    assert np.median(own) == 0  # a leaky count would give every one of them >= 1/k


def test_the_anomalies_view_says_likeness_in_a_users_words() -> None:
    from app.views.anomalies import SCORER_NAMES, combination_note

    labels = {"classes": ["merger"], "n_positive_held_out": 34}
    chosen = {"formula": "fisher(likeness,asymmetry)", "n_positive": 137, "labels": labels}
    note = combination_note({"combination": {**chosen, "average_precision": {"x": 0.6}}})
    assert "<code>fisher(likeness,asymmetry)</code>" in note
    assert "objects near the anomalies you labelled" in note and "own label not counted" in note
    assert SCORER_NAMES["likeness"] == "near the anomalies you labelled"  # its bar and filter
    plain = {**chosen, "formula": "mean(iforest,knn,asymmetry)", "average_precision": {"x": 0.5}}
    assert "anomalies you labelled" not in combination_note({"combination": plain})


def test_the_choice_bench_draws_likeness_from_each_half_only() -> None:
    from backend.latent.scorers import knn_graph, rank_normalise
    from backend.latent.vectors import unit_rows
    from bench.bench_anomaly_choice import split_half

    embeddings, pixels, positive, held_out = _clustered()
    _, graph = knn_graph(unit_rows(embeddings), 10)
    table = _fit(embeddings, pixels, positive, held_out)
    norm = {c: rank_normalise(table[f"{c}_raw"].to_numpy()) for c in ("knn", "iforest")}
    norm |= {c: rank_normalise(pixels[c]) for c in pixels}
    train = ~held_out
    with_likeness = split_half(norm, positive, train, draws=3, seed=0, graph=graph)
    assert all("likeness" in f for f in with_likeness["picked"])
    assert with_likeness["chosen_recall_mean"] > with_likeness["default_recall_mean"] + 0.3
    # the full likeness (read from both halves) is never used: without the graph, none
    leaky = {**norm, "likeness": rank_normalise(table["likeness_raw"].to_numpy())}
    plain = split_half(leaky, positive, train, draws=3, seed=0)
    assert not any("likeness" in f for f in plain["picked"])
