"""Active learning: acquisition scores, diverse batches, cold start and the labelling queue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.active import acquisition_scores, cold_start, next_batch
from backend.active.acquisition import diversify


def blobs(n_clusters: int, per: int, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight, well separated clusters: (embeddings, cluster of each row)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 10
    which = np.repeat(np.arange(n_clusters), per)
    return (centres[which] + rng.normal(0, 0.1, (len(which), dim))).astype(np.float32), which


def table(bald: np.ndarray) -> pd.DataFrame:
    p = np.clip(0.5 + 0.5 * (1 - bald / bald.max()), 0.5, 1.0)
    return pd.DataFrame({"p_a": p, "p_b": 1 - p, "entropy": bald * 2, "bald": bald})


def test_bald_ranks_uncertain_first() -> None:
    x, _ = blobs(4, 25)
    bald = np.linspace(0.0, 1.0, 100)
    labelled = np.zeros(100, bool)
    labelled[[0, 99]] = True  # the most uncertain one is labelled already
    batch = next_batch(x, table(bald), labelled, "bald", 5, diversity="none")
    assert batch.tolist() == [98, 97, 96, 95, 94]


def test_margin_is_the_default_and_ranks_closest_call_first() -> None:
    x, _ = blobs(2, 3)
    preds = pd.DataFrame({"p_a": [0.9, 0.55, 0.7, 0.5, 0.8, 0.6], "p_b": 0.0, "p_c": 0.0})
    preds["p_b"] = 1 - preds["p_a"]
    preds["bald"] = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # BALD would pick object 0
    labelled = np.zeros(6, bool)
    labelled[3] = True  # the closest call (0.5 / 0.5) is labelled already
    assert next_batch(x, preds, labelled, size=3, diversity="none").tolist() == [1, 5, 2]


def test_scores_margin_entropy_random() -> None:
    preds = pd.DataFrame({"p_a": [0.5, 0.9, 0.7], "p_b": [0.5, 0.1, 0.3], "entropy": [3, 1, 2]})
    assert np.argmax(acquisition_scores(preds, "margin")) == 0
    assert acquisition_scores(preds, "entropy").tolist() == [3, 1, 2]
    r = acquisition_scores(preds, "random", seed=1)
    assert r.shape == (3,) and np.array_equal(r, acquisition_scores(preds, "random", seed=1))
    with pytest.raises(ValueError, match="unknown strategy"):
        acquisition_scores(preds, "oracle")


@pytest.mark.parametrize("method", ["kmeans++", "coreset"])
def test_diversity_spreads_batch_across_clusters(method: str) -> None:
    x, cluster = blobs(5, 20)
    rng = np.random.default_rng(0)
    bald = 0.5 + 0.01 * rng.random(100) + 0.1 * (cluster == 0)  # cluster 0 a bit more uncertain
    labelled = np.zeros(100, bool)
    labelled[99] = True  # with no label at all next_batch is a cold start
    plain = next_batch(x, table(bald), labelled, "bald", 5, diversity="none")
    assert len(set(cluster[plain])) == 1  # 5 near twins from cluster 0
    batch = next_batch(x, table(bald), labelled, "bald", 5, diversity=method, pool_factor=20)
    assert len(set(batch.tolist())) == 5 and not labelled[batch].any()
    assert len(set(cluster[batch])) >= 4
    assert cluster[batch[0]] == 0  # the best candidate still comes first


def test_diversify_handles_duplicates() -> None:
    x = np.ones((10, 4), np.float32)
    out = diversify(x, np.arange(10), np.arange(10.0), 4, method="kmeans++")
    assert len(set(out.tolist())) == 4


def test_cold_start_covers_clusters() -> None:
    x, cluster = blobs(6, 50, seed=3)
    picked = cold_start(x, 6, seed=0)
    assert sorted(cluster[picked].tolist()) == list(range(6))
    exclude = cluster == 2
    picked = cold_start(x, 5, exclude=exclude, seed=1)
    assert not exclude[picked].any() and len(set(cluster[picked])) == 5
    # next_batch falls back to a cold start when nothing is labelled
    batch = next_batch(x, None, np.zeros(len(x), bool), "bald", 6, seed=0)
    assert sorted(cluster[batch].tolist()) == list(range(6))


def test_random_and_exhausted() -> None:
    x, _ = blobs(2, 5)
    labelled = np.zeros(10, bool)
    labelled[:7] = True
    assert sorted(next_batch(x, None, labelled, "random", 50).tolist()) == [7, 8, 9]
    assert next_batch(x, None, np.ones(10, bool), "bald", 5).size == 0


# -- the labelling queue -----------------------------------------------------------------------
def _survey_products(survey, x: np.ndarray) -> None:
    from backend.products import write_embeddings
    from backend.registry import ModelRegistry

    def fill(out: np.ndarray) -> None:
        out[:] = x

    write_embeddings(survey.name, "encoder", "v0001", x.shape, fill)
    registry = ModelRegistry()
    encoder = registry.save("encoder", {}, {"kind": "dummy"}, survey=survey.name)
    registry.set_active(survey.name, "encoder", encoder.version)


def test_queue_skips_labelled_and_refreshes_on_new_classifier(tiny_survey) -> None:
    from backend.active.queue import LabelQueue
    from backend.labels.store import LabelStore
    from backend.products import write_predictions
    from backend.registry import ModelRegistry

    x, _ = blobs(5, 30)
    _survey_products(tiny_survey, x)
    store = LabelStore()
    queue = LabelQueue("tiny", "ana", batch_size=10, store=store, strategy="bald")
    assert LabelQueue("tiny", "bob", store=store).strategy == "margin"  # the default
    first = queue.next(3)
    assert len(first) == 3 and queue.classifier_version is None  # cold start
    store.add("tiny", first[0], "spiral", user="bob")  # labelled by someone else
    queue.skip(first[1])
    nxt = queue.next(3)
    assert first[0] not in nxt and first[1] not in nxt and nxt[0] == first[2]
    # drain: never repeats a labelled or skipped object
    seen = set()
    for _ in range(40):
        (oid,) = queue.next(1)
        assert oid not in seen
        seen.add(oid)
        store.add("tiny", oid, "elliptical", user="ana")
    labelled = set(store.current("tiny")["object_id"])
    assert first[0] in labelled and not (set(queue.next(20)) & (labelled | {first[1]}))
    # a new active classifier: the queue re-ranks by its BALD
    registry = ModelRegistry()
    clf = registry.save(
        "classifier", {}, {"embedding_source": {"kind": "encoder", "version": "v0001"}},
        survey="tiny",
    )  # fmt: skip
    bald = np.zeros(150)
    target = next(i for i in range(150) if tiny_survey.catalog["object_id"][i] not in labelled)
    bald[target] = 1.0
    preds = table(bald + 1e-3)
    preds.insert(0, "object_id", tiny_survey.catalog["object_id"].to_numpy())
    write_predictions("tiny", "classifier", clf.version, preds)
    registry.set_active("tiny", "classifier", clf.version)
    top = queue.next(1)
    assert queue.classifier_version == clf.version
    assert top == [tiny_survey.catalog["object_id"][target]]


# -- the MC-dropout predictions behind the scores ----------------------------------------------
def test_class_major_mc_summary_matches_reference() -> None:
    """mc_predict's fast class-major path gives what models.uncertainty.summarize_samples gives
    on the same consistent dropout masks (probabilities, entropy, BALD)."""
    import torch

    from models import EmbeddingClassifier
    from models.uncertainty import consistent_mc_logits, summarize_samples

    torch.manual_seed(0)
    model = EmbeddingClassifier(16, 5, hidden=(32,), dropout=0.3).eval()
    model.set_temperature(1.5)
    x = torch.randn(300, 16) * 3
    fast = model.mc_predict(x, n_samples=25, keep_samples=True, seed=4)
    prefix, rest = model.head.split()
    with torch.no_grad():
        logits = consistent_mc_logits(rest, prefix(x), 25, 4)
    ref = summarize_samples((logits / model.temperature).softmax(dim=-1), keep_samples=True)
    for key in ("probs", "entropy", "bald", "samples"):
        got, want = getattr(fast, key), getattr(ref, key)
        assert got.shape == want.shape and got.dtype == torch.float32
        assert torch.allclose(got, want, atol=1e-6), key
    assert float(fast.bald.max()) > 1e-3 and float(fast.bald.min()) >= 0.0
    # no dropout: every sample is the same, BALD exactly 0
    assert torch.all(EmbeddingClassifier(16, 5, dropout=0.0).mc_predict(x, 10).bald == 0)


def test_torch_threads_context_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from backend.active.loop import job_threads, torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.delenv("LATENTSKY_JOB_THREADS", raising=False)
    assert 1 <= job_threads() <= before
    monkeypatch.setenv("LATENTSKY_JOB_THREADS", "3")
    assert job_threads() == 3
