"""``python -m backend evaluate``: the metrics on synthetic arrays, labels, baselines, the report
and the command on a tiny survey (no training: models are registered with random weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.evaluation import metrics as m
from backend.evaluation.labels import (
    EvaluationError,
    column_labels,
    parse_merge,
    rare_classes,
    split_names,
)
from backend.survey import Survey, SurveyWriter

ODD = "<b>odd|one</b>"  # a class name a user typed: must come out inert


def clusters(n_per: int, n_classes: int, dim: int = 8, spread: float = 0.05, seed: int = 0):
    """Well separated Gaussian clusters: (features, labels)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:n_classes] * 5.0
    x = np.concatenate([c + rng.normal(0, spread, (n_per, dim)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per)
    return x.astype(np.float32), y


# -- metrics --------------------------------------------------------------------------------------
def test_precision_at_10_is_one_on_separated_clusters_and_base_rate_when_shuffled() -> None:
    x, y = clusters(200, 2)
    queries = np.arange(0, 400, 4)
    _, ids = m.cosine_neighbours(x, x[queries], 10, exclude=queries)
    assert not (ids == queries[:, None]).any()  # a query is never its own neighbour
    precision = m.precision_at_k(m.neighbour_labels(ids, y), y[queries])
    assert precision.min() == 1.0
    shuffled = np.random.default_rng(1).permutation(y)
    precision = m.precision_at_k(m.neighbour_labels(ids, shuffled), shuffled[queries])
    assert abs(np.nanmean(precision) - 0.5) < 0.1
    per_class = m.per_class_mean(precision, shuffled[queries], 3)
    assert per_class[2] is None and all(0.3 < v < 0.7 for v in per_class[:2])


def test_precision_ignores_unlabelled_neighbours() -> None:
    neighbours = np.array([[0, 0, -1, 1], [-1, -1, -1, -1], [2, -1, 2, 2]])
    precision = m.precision_at_k(neighbours, np.array([0, 0, 2]))
    assert precision[0] == pytest.approx(2 / 3) and np.isnan(precision[1]) and precision[2] == 1.0


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_and_majority_match_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 4, 300), rng.integers(0, 5, 300)
    assert m.balanced_accuracy(truth, pred) == pytest.approx(balanced_accuracy_score(truth, pred))
    assert m.accuracy(truth, truth) == 1.0
    majority, acc = m.majority_accuracy(np.array([1, 1, 0, 2]), np.array([1, 0, 1, 1]))
    assert majority == 1 and acc == 0.75


def test_knn_and_probe_are_perfect_on_clusters_and_near_chance_on_noise() -> None:
    x, y = clusters(60, 3)
    rows = np.random.default_rng(0).permutation(len(y))
    train, val = rows[:120], rows[120:]
    knn = m.knn_classification(x, y, train, val, k=10)
    assert knn["accuracy"] == 1.0 and knn["balanced_accuracy"] == 1.0
    probe = m.linear_probe(x, y, train, val)
    assert probe["balanced_accuracy"] == 1.0 and probe["n_train"] == 120
    noise = np.random.default_rng(2).normal(size=(600, 16)).astype(np.float32)
    labels = np.random.default_rng(3).integers(0, 2, 600)
    knn = m.knn_classification(noise, labels, np.arange(400), np.arange(400, 600))
    probe = m.linear_probe(noise, labels, np.arange(400), np.arange(400, 600))
    assert (
        abs(knn["balanced_accuracy"] - 0.5) < 0.12 and abs(probe["balanced_accuracy"] - 0.5) < 0.12
    )


def test_knn_vote_breaks_ties_by_similarity_and_skips_unlabelled() -> None:
    labels = np.array([[0, 1, 1, 0, -1], [2, -1, -1, -1, -1]])
    sims = np.array([[0.9, 0.5, 0.4, 0.8, 1.0], [0.1, 1.0, 1.0, 1.0, 1.0]])
    assert m.knn_vote(labels, sims, 3).tolist() == [0, 2]


def test_stratified_subsample_keeps_every_class_and_is_seeded() -> None:
    labels = np.array([0] * 90 + [1] * 9 + [2])
    rows = np.arange(100)
    a = m.stratified_subsample(rows, labels, 0.1, seed=0)
    assert np.bincount(labels[a]).tolist() == [9, 1, 1]
    assert np.array_equal(a, m.stratified_subsample(rows, labels, 0.1, seed=0))


def test_average_precision_known_values() -> None:
    neighbours = np.array(
        [
            [1, 0, 1, 0],  # hits at ranks 1 and 3 of 2 relevant: (1 + 2/3) / 2
            [0, -1, 1, 1],  # unlabelled dropped: ranking 0, 1, 1 -> (1/2 + 2/3) / 2
            [0, 0, 0, 0],  # nothing found
            [0, 1, 0, 0],  # the only other object of its class, at rank 2: 1/2
        ]
    )
    ap = m.average_precision(neighbours, np.array([1, 1, 1, 1]), np.array([2, 2, 3, 1]), k=4)
    assert ap == pytest.approx([(1 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2, 0.0, 0.5])
    # A cluster's members retrieve each other perfectly:
    x, y = clusters(30, 2)
    q = np.flatnonzero(y == 1)[:5]
    _, ids = m.cosine_neighbours(x, x[q], 40, exclude=q)
    ap = m.average_precision(m.neighbour_labels(ids, y), y[q], np.full(5, 29), k=40)
    assert ap == pytest.approx(np.ones(5))
    assert np.isnan(m.average_precision(np.array([[0, 0]]), np.array([1]), np.array([0]), 2)[0])


def test_recall_at_k_and_its_random_expectation() -> None:
    scores = np.arange(1000, dtype=float)
    positives = np.zeros(1000, dtype=bool)
    positives[[999, 998, 5]] = True
    assert m.recall_at_k(scores, positives, 100) == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    recalls = [m.recall_at_k(rng.random(1000), positives | (rng.random(1000) < 0.05), 100)
               for _ in range(50)]  # fmt: skip
    assert abs(np.mean(recalls) - 0.1) < 0.03
    assert np.isnan(m.recall_at_k(scores, np.zeros(1000, dtype=bool)))


def test_classifier_probabilities_are_merged_onto_the_evaluation_classes() -> None:
    probs = np.array([[0.2, 0.3, 0.4, 0.1], [0.7, 0.1, 0.1, 0.1]])
    mapped, unmatched = m.map_probabilities(
        probs, ["spiral_cw", "spiral_acw", "elliptical", "star"], ["elliptical", "spiral"],
        {"spiral_cw": "spiral", "spiral_acw": "spiral"},
    )  # fmt: skip
    np.testing.assert_allclose(mapped, [[0.4, 0.5, 0.1], [0.1, 0.8, 0.1]])
    assert unmatched == ["star"]
    ece = m.expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
    assert ece == pytest.approx(0.4)


def test_bootstrap_interval_is_seeded_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    pred = np.where(rng.random(400) < 0.8, truth, 1 - truth)

    def stat(r: np.ndarray) -> float:
        return m.balanced_accuracy(truth[r], pred[r])

    lo, hi = m.bootstrap_ci(stat, 400, 1000, seed=0)
    assert lo < m.balanced_accuracy(truth, pred) < hi and hi - lo < 0.12
    assert (lo, hi) == m.bootstrap_ci(stat, 400, 1000, seed=0)


# -- labels ---------------------------------------------------------------------------------------
def test_merge_and_rare_parsing() -> None:
    assert parse_merge(["a,b=ab", "c=d; e , f=ef"]) == {
        "a": "ab", "b": "ab", "c": "d", "e": "ef", "f": "ef"
    }  # fmt: skip
    with pytest.raises(EvaluationError, match="OLD1,OLD2=NEW"):
        parse_merge(["a,b"])
    with pytest.raises(EvaluationError, match="both"):
        parse_merge(["a=x", "a=y"])
    assert split_names("merger, dont_know,merger") == ["merger", "dont_know"]
    catalog = pd.DataFrame({"c": ["cw", "acw", "ell", None, "", "m", "ell"]})
    labels = column_labels(catalog, "c", parse_merge(["cw,acw=spiral"]))
    assert labels.classes == ["ell", "m", "spiral"]
    assert labels.labels.tolist() == [2, 2, 0, -1, -1, 1, 0]
    assert rare_classes(["m", "cw"], labels) == ["m", "spiral"]
    with pytest.raises(EvaluationError, match="unknown class 'x'"):
        rare_classes(["x"], labels)
    with pytest.raises(EvaluationError, match="not in column"):
        column_labels(catalog, "c", {"nope": "x"})
    with pytest.raises(EvaluationError, match="no catalog column"):
        column_labels(catalog, "missing")
    with pytest.raises(EvaluationError, match="at least two classes"):
        column_labels(catalog, "c", parse_merge(["cw,acw,ell,m=all"]))


# -- baselines ------------------------------------------------------------------------------------
def test_average_pool_and_factor() -> None:
    from backend.evaluation.baselines import average_pool, pool_factor

    assert (pool_factor(128), pool_factor(64), pool_factor(16), pool_factor(69)) == (4, 2, 1, 2)
    images = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    pooled = average_pool(images, 2)
    assert pooled.shape == (2, 4) and pooled[0].tolist() == [2.5, 4.5, 10.5, 12.5]


# -- the command on a tiny survey -----------------------------------------------------------------
N_PER = 60


@pytest.fixture
def blobs(home: Path) -> Survey:
    """Three kinds of 3-band 16x16 blobs (narrow red, wide blue, rare off-centre ring) with a
    label column; a few objects are unlabelled."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16] - 7.5
    images, kinds = [], []
    for i in range(3 * N_PER):
        kind = ("narrow", "wide", ODD)[i % 3] if i % 3 < 2 or i % 9 == 2 else "narrow"
        if kind == "narrow":
            img = np.exp(-(xx**2 + yy**2) / 2.0)[None] * np.array([3, 2, 1])[:, None, None]
        elif kind == "wide":
            img = np.exp(-(xx**2 + yy**2) / 30.0)[None] * np.array([1, 2, 3])[:, None, None]
        else:
            r = np.hypot(xx - 2, yy)
            img = np.exp(-((r - 4) ** 2))[None] * np.array([2, 2, 2])[:, None, None]
        images.append(img + rng.normal(0, 0.05, (3, 16, 16)))
        kinds.append(kind)
    labels = pd.Series(kinds, dtype=object)
    labels.iloc[[5, 50]] = None
    catalog = pd.DataFrame(
        {
            "object_id": [f"b-{i:04d}" for i in range(len(kinds))],
            "ra": np.linspace(10, 11, len(kinds)),
            "dec": np.linspace(0, 1, len(kinds)),
            "kind": labels,
            "flavour": np.where(np.arange(len(kinds)) % 2, "sweet", "sour"),
            "single": "one",
        }
    )
    with SurveyWriter("blobs", ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(np.asarray(images, dtype=np.float32), catalog)
    return Survey.open("blobs")


def register_models(survey: Survey) -> None:
    """An untrained small encoder (no embeddings yet), made active, and a classifier version
    with a predictions product whose classes need the merge."""
    import torch

    from backend.products import write_predictions
    from backend.registry import ModelRegistry
    from models import BackboneConfig, SimCLREncoder, seed_everything
    from models.normalize import fit_normalization

    seed_everything(1)
    encoder = SimCLREncoder(
        survey.bands,
        backbone=BackboneConfig(embedding_dim=16, stem_width=8, widths=(8, 16), strides=(2, 2)),
        normalization=fit_normalization(survey.images, survey.bands),
    )
    registry = ModelRegistry()
    enc = registry.save("encoder", encoder.state_dict(), encoder.config, survey=survey.name)
    registry.set_active(survey.name, "encoder", enc.version)
    classes = ["narrow", "wide", "star", ODD]
    kinds = survey.catalog["kind"].fillna("narrow").to_numpy()
    truth = np.array([{"narrow": 0, "wide": 1, ODD: 3}[k] for k in kinds])
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), len(kinds)) * 0.3
    probs[np.arange(len(kinds)), truth] += 0.7
    table = pd.DataFrame({f"p_{c}": probs[:, j] for j, c in enumerate(classes)})
    table.insert(0, "pred_class", np.asarray(classes, dtype=object)[probs.argmax(1)])
    table.insert(0, "object_id", survey.catalog["object_id"].to_numpy())
    config = {"kind": "embedding_classifier", "classes": classes,
              "embedding_source": {"version": enc.version}}  # fmt: skip
    clf = registry.save("classifier", {"w": torch.zeros(1)}, config, survey=survey.name)
    write_predictions(survey.name, "classifier", clf.version, table)


def test_evaluate_command_writes_the_report_and_keeps_the_previous_one(
    blobs: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_models(blobs)
    args = ["evaluate", "--survey", "blobs", "--label-column", "kind", "--no-progress",
            "--merge", "wide=broad", "--rare", ODD, "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    folder = home / "products" / "blobs" / "evaluation" / "class"
    report = json.loads((folder / "report.json").read_text())
    assert json.loads((tmp_path / "r.json").read_text()) == report
    assert (folder / "report.md").read_text() in out
    assert {p.name for p in folder.glob("*.png")} == {
        "precision_at_10.png", "probe_balanced_accuracy.png"
    }  # fmt: skip
    assert (home / "validation" / "blobs" / "class.parquet").is_file()
    from backend.pipeline.runner import lineage

    record = lineage("blobs", "evaluation")  # the report's lineage, as ensure writes it
    assert record["params"]["label_column"] == "kind" and record["inputs"]["encoder"] == "v0001"

    names = [r["name"] for r in report["representations"]]
    assert names == ["encoder v0001", "pixel-pca", "random-init"]
    assert any("embedded first" in n for n in report["notes"])
    assert (home / "products" / "blobs" / "encoder-v0001" / "embeddings.npy").is_file()
    assert report["classes"] == [ODD, "broad", "narrow"]
    split = report["split"]
    assert split["n_labelled"] == 178 and split["n_val"] + split["n_train"] == 178
    assert split["majority_class"] == "narrow"
    pca = report["representations"][1]
    assert pca["dim"] == 64 and pca["info"]["pool_factor"] == 1
    assert pca["knn"]["balanced_accuracy"] > 0.9  # the kinds differ plainly in pixels
    assert pca["precision_at_10"]["per_class"]["broad"] > 0.9
    assert set(pca["probe"]) == {"10%", "100%"}
    assert pca["rare_retrieval"]["per_class"][ODD]["n_queries"] >= 1
    assert pca["anomaly"]["n_rare"] == 20
    assert report["anomaly_random_expectation"] == pytest.approx(100 / 180)
    (clf,) = report["classifiers"]
    assert clf["unmatched_classes"] == ["star"]  # no label counterpart: always wrong
    assert clf["accuracy"] > 0.9 and clf["ece_ci"][0] <= clf["ece"] <= clf["ece_ci"][1]
    lo, hi = clf["balanced_accuracy_ci"]
    assert lo <= clf["balanced_accuracy"] <= hi

    markdown = (folder / "report.md").read_text()
    assert "<b>" not in markdown and "&lt;b&gt;odd\\|one&lt;/b&gt;" in markdown
    assert "| embedding-only (iforest + knn) |" in markdown  # named for what it is
    first = report["created"], report["split"]["n_val"]

    # Again, without the merge and with a stored anomaly ranking: the old report moves to
    # previous/.
    assert main(["score", "--survey", "blobs"]) == 0
    args = ["evaluate", "--survey", "blobs", "--label-column", "kind", "--no-progress",
            "--rare", ODD, "--baselines", "none", "--encoders", "v0001",
            "--out", str(tmp_path / "copy")]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    previous = json.loads((folder / "previous" / "report.json").read_text())
    assert (previous["created"], previous["split"]["n_val"]) == first
    assert {p.name for p in (folder / "previous").iterdir()} == {
        "report.md", "report.json", "precision_at_10.png", "probe_balanced_accuracy.png"
    }  # fmt: skip
    again = json.loads((folder / "report.json").read_text())
    assert [r["name"] for r in again["representations"]] == ["encoder v0001"]
    stored = again["representations"][0]["anomaly"]["stored"]
    assert stored["scorers"] == ["knn", "sharpness", "asymmetry"]
    assert 0 <= stored["recall_at_100"] <= 1
    assert (
        "stored anomaly product (`score`: knn + sharpness + asymmetry)"
        in (folder / "report.md").read_text()
    )
    assert again["split"]["n_val"] == split["n_val"]  # the stored split is reused
    assert again["classes"] == [ODD, "narrow", "wide"]
    assert again["classifiers"][0]["unmatched_classes"] == ["star"]
    assert again["command"].endswith("--rare '<b>odd|one</b>' --encoders v0001")
    assert (tmp_path / "copy" / "report.md").is_file()
    assert not (tmp_path / "copy" / "previous").exists()


def test_encoders_that_cannot_embed_the_survey_are_skipped_unless_named(
    blobs: Survey, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.registry import ModelRegistry
    from models import BackboneConfig, SimCLREncoder

    other = SimCLREncoder(
        ["u", "g"], backbone=BackboneConfig(embedding_dim=8, widths=(8,), strides=(2,))
    )
    ModelRegistry().save("encoder", other.state_dict(), other.config, survey="elsewhere")
    base = ["evaluate", "--survey", "blobs", "--label-column", "kind", "--no-progress",
            "--baselines", "none"]  # fmt: skip
    assert main([*base, "--encoders", "all"]) == 0
    report = json.loads((home / "products/blobs/evaluation/class/report.json").read_text())
    assert report["representations"] == []
    assert any(n.startswith("encoder v0001 skipped") and "band" in n for n in report["notes"])
    assert "No representation was evaluated" in capsys.readouterr().out
    assert main([*base, "--encoders", "v0001"]) == 2
    assert "band" in capsys.readouterr().err
    assert main([*base, "--encoders", "v0009"]) == 2
    assert "no encoder version 'v0009'" in capsys.readouterr().err


def test_evaluate_errors_are_one_line(blobs: Survey, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["evaluate", "--no-progress"]
    cases = [
        (["--survey", "nope", "--label-column", "kind"], "unknown survey 'nope'"),
        (["--survey", "blobs", "--label-column", "missing"], "no catalog column 'missing'"),
        (["--survey", "blobs", "--label-column", "kind", "--merge", "x=y"], "--merge names"),
        (["--survey", "blobs", "--label-column", "kind", "--rare", "zz"], "unknown class 'zz'"),
        (["--survey", "blobs", "--label-column", "single"], "at least two classes"),
        (["--survey", "blobs", "--label-column", "kind", "--task", "../x"], "task name"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_the_probe_chooses_its_regularisation_on_the_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    x = rng.normal(size=(600, 300))
    x[:, :5] += 0.6 * (2 * y - 1)[:, None]
    train, val = np.arange(150), np.arange(150, 600)
    probe = m.linear_probe(x, y, train, val)
    assert probe["C"] in m.PROBE_CS and probe["balanced_accuracy"] > 0.7
    shuffled = y.copy()
    shuffled[val] = rng.permutation(y[val])  # the validation part cannot steer the choice
    assert m.linear_probe(x, shuffled, train, val)["C"] == probe["C"]
    few = m.linear_probe(x, np.r_[1, np.zeros(599, int)], train, val)  # one member: no CV
    assert few["C"] == 1.0
