"""How the anomaly scorers are combined: formulas (max, mean, fisher, nested), and the choice of
one by a survey's labelled anomalies, never by its held-out (validation) objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.labels.schema import SchemaError, read_schema, schema_text
from backend.latent.anomaly import AnomalyRanker, combine
from backend.latent.combination import (
    CANDIDATES,
    DEFAULT_FORMULA,
    MIN_POSITIVES,
    average_precision,
    choose,
    evaluate,
    parse,
)
from backend.latent.errors import LatentError
from backend.latent.scorers import rank_normalise


def test_formulas_nest_and_name_the_scorers_they_read() -> None:
    formula = parse(" max(knn, sharpness, mean(iforest,knn,asymmetry))")
    assert formula.text == "max(knn,sharpness,mean(iforest,knn,asymmetry))"
    assert formula.scorers == ("knn", "sharpness", "iforest", "asymmetry")
    assert all(parse(c).text == c for c in CANDIDATES)
    for bad in ("max(knn", "median(knn,lof)", "knn", "max(knn;lof)", "max(knn)lof"):
        with pytest.raises(LatentError, match="anomaly combination"):
            parse(bad)


def _norm(rng: np.random.Generator, n: int = 400) -> dict[str, np.ndarray]:
    return {name: rank_normalise(rng.random(n)) for name in ("iforest", "knn", "asymmetry")}


def test_max_ranks_one_extreme_score_first_and_mean_a_consensus() -> None:
    norm = _norm(np.random.default_rng(0))
    for values in norm.values():
        values[:2] = 0.5
    norm["knn"][0] = 1.0  # object 0: extreme for one scorer only
    norm["iforest"][1] = norm["knn"][1] = norm["asymmetry"][1] = 0.97  # object 1: all fairly
    first = {}
    for rule in ("max", "mean", "fisher"):
        value = evaluate(parse(f"{rule}(iforest,knn,asymmetry)"), norm)
        assert value.min() == 0 and 0.99 < value.max() <= 1  # a percentile: formulas nest
        first[rule] = 0 if value[0] > value[1] else 1
    assert first == {"max": 0, "mean": 1, "fisher": 1}


def test_the_default_formula_ranks_as_the_products_max_did() -> None:
    rng = np.random.default_rng(1)
    raw = {name: rng.normal(size=300) for name in ("knn", "sharpness", "asymmetry")}
    raw["sharpness"][::7] = np.nan
    old = combine(raw, how="max")
    new = combine(raw, how=DEFAULT_FORMULA)
    np.testing.assert_array_equal(old["rank"], new["rank"])
    np.testing.assert_allclose(old["anomaly"], new["anomaly"], atol=1e-6)
    with pytest.raises(LatentError, match="needs scorers \\['iforest'\\]"):
        combine(raw, how="mean(iforest,knn)")


def test_average_precision_counts_ties_against_the_positives() -> None:
    positive = np.array([True, False, False, False])
    assert average_precision(np.array([4.0, 3, 2, 1]), positive) == 1.0
    assert average_precision(np.ones(4), positive) == 0.25


def _labelled_case() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """400 objects: 20 'consensus' anomalies (high on every scorer, which a mean finds) not
    held out, 20 'extreme' ones (top of the kNN score only, which a max finds) held out."""
    rng = np.random.default_rng(2)
    n = 400
    raw = {name: rng.normal(size=n) for name in ("iforest", "knn", "sharpness", "asymmetry")}
    consensus, extreme = np.arange(20), np.arange(20, 40)
    for name in ("iforest", "knn", "asymmetry"):
        raw[name][consensus] = 1.8 + 0.1 * rng.random(20)
    raw["knn"][extreme] = 5.0 + rng.random(20)
    positive = np.zeros(n, dtype=bool)
    positive[:40] = True
    held_out = np.zeros(n, dtype=bool)
    held_out[extreme] = True
    held_out[300:] = True  # and some ordinary objects
    return {k: rank_normalise(v) for k, v in raw.items()}, positive, held_out


def test_the_choice_follows_the_labelled_anomalies_outside_the_held_out_rows() -> None:
    norm, positive, held_out = _labelled_case()
    choice = choose(norm, positive, held_out)
    assert parse(choice.formula).rule == "mean"  # the consensus anomalies, not held out
    assert choice.n_positive == 20 and choice.n_held_out == 120
    assert choice.scores[choice.formula] == max(choice.scores.values())
    assert choice.scores[choice.formula] > choice.scores[DEFAULT_FORMULA]
    # the held-out (extreme) anomalies never steer it: relabelling them changes nothing ...
    assert choose(norm, positive & ~held_out, held_out).formula == choice.formula
    # ... while, were they the ones outside, the max would win
    swapped = held_out.copy()
    swapped[:40] = ~held_out[:40]
    assert parse(choose(norm, positive, swapped).formula).rule == "max"


def test_too_few_labelled_anomalies_keep_the_default() -> None:
    norm, positive, held_out = _labelled_case()
    few = positive & (np.arange(len(positive)) < MIN_POSITIVES - 1)
    choice = choose(norm, few, held_out, default="max(knn,asymmetry)")
    assert choice.formula == "max(knn,asymmetry)" and choice.scores == {}
    assert f"fewer than {MIN_POSITIVES}" in choice.reason


def test_a_ranker_fitted_with_labelled_anomalies_ranks_by_the_chosen_formula() -> None:
    norm, positive, held_out = _labelled_case()
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(len(positive), 8)).astype(np.float32)
    pixels = {"sharpness": norm["sharpness"], "asymmetry": norm["asymmetry"]}
    plain = AnomalyRanker.fit(
        embeddings, scorers=("knn", "sharpness", "asymmetry"), combine_with="max", pixels=pixels
    ).scores
    assert "combination" not in plain.attrs and "iforest" not in plain
    ranker = AnomalyRanker.fit(
        embeddings, scorers=("knn", "sharpness", "asymmetry"), combine_with="max",
        pixels=pixels, labelled=(positive, held_out),
    )  # fmt: skip
    table = ranker.scores
    choice = table.attrs["combination"]
    assert "iforest" in table and choice["n_positive"] == 20
    names = ("iforest", "knn", "sharpness", "asymmetry", "likeness")  # likeness: 20 labelled
    raw = {s: table[f"{s}_raw"].to_numpy() for s in names}
    expected = combine(raw, how=choice["formula"])
    np.testing.assert_array_equal(table["rank"], expected["rank"])
    assert choice["formula"] != DEFAULT_FORMULA  # labelled anomalies changed the ranking
    with pytest.raises(LatentError, match="labelled anomalies of 3 objects"):
        AnomalyRanker.fit(embeddings, scorers=("knn",), labelled=(positive[:3], held_out[:3]))


def test_a_schema_declares_its_anomaly_classes(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    classes = "classes: [{name: elliptical}, {name: merger}, {name: dont_know}]\n"
    path.write_text(f"task: class\nanomalies: [merger, dont_know]\n{classes}")
    schema = read_schema(path)
    assert schema.anomalies == ("merger", "dont_know")
    again = tmp_path / "again.yaml"
    again.write_text(schema_text(schema))
    assert read_schema(again).anomalies == ("merger", "dont_know")
    path.write_text(f"task: class\n{classes}")
    assert read_schema(path).anomalies == ()
    for bad, message in (("[ring]", "anomalies names 'ring', not a class"), ("merger", "list")):
        path.write_text(f"task: class\nanomalies: {bad}\n{classes}")
        with pytest.raises(SchemaError, match=f"{path}: .*{message}"):
            read_schema(path)


def test_the_choice_bench_measures_a_half_chosen_on_the_other_half() -> None:
    from bench.bench_anomaly_choice import split_half

    rng = np.random.default_rng(4)
    n = 600
    raw = {name: rng.normal(size=n) for name in ("iforest", "knn", "sharpness", "asymmetry")}
    rare = np.zeros(n, dtype=bool)
    rare[:40] = True  # consensus anomalies: a mean of the three finds them, a max less so
    for name in ("iforest", "knn", "asymmetry"):
        raw[name][:40] = 1.5 + 0.2 * rng.random(40)
    raw["sharpness"][40:80] = 6.0  # sharp ordinary objects fill a max's top
    norm = {k: rank_normalise(v) for k, v in raw.items()}
    train = np.arange(n) < 500
    out = split_half(norm, rare, train, draws=5, seed=0)
    again = split_half(norm, rare, train, draws=5, seed=0)
    assert out == again and out["draws"] == 5 and sum(out["picked"].values()) == 5
    assert DEFAULT_FORMULA not in out["picked"]
    assert out["chosen_recall_mean"] > out["default_recall_mean"] + 0.2
