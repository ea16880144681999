"""The evaluation's metrics: pure functions of arrays (no files, no models).

Labels are int class indices, -1 for unlabelled. Neighbour tables are (n_queries, k) arrays of
row indices into the survey (-1 where a search found fewer than k), nearest first.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

KNN_K = 10
PRECISION_K = 10
RETRIEVAL_K = 100
ANOMALY_K = 100
PROBE_MAX_ITER = 2000
# inverse regularisation strengths a probe chooses from by cross-validation on its training rows
PROBE_CS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
PROBE_FOLDS = 5


# -- classification ------------------------------------------------------------------------------
def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn's definition)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    classes, inverse = np.unique(y_true, return_inverse=True)
    hits = np.bincount(inverse, weights=(y_pred == y_true), minlength=len(classes))
    return float(np.mean(hits / np.bincount(inverse, minlength=len(classes))))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true)
    return float(np.mean(np.asarray(y_pred) == y_true)) if len(y_true) else float("nan")


def majority_accuracy(train_labels: np.ndarray, val_labels: np.ndarray) -> tuple[int, float]:
    """(majority class of the train part, accuracy of always predicting it on val)."""
    majority = int(np.bincount(np.asarray(train_labels)).argmax())
    return majority, accuracy(val_labels, np.full(len(val_labels), majority))


def unit_vectors(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, C-contiguous); all-zero rows stay zero."""
    x = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def cosine_neighbours(
    base: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, row indices into ``base``) of the ``k`` nearest rows by cosine similarity,
    exact (FAISS inner product on unit vectors). ``exclude[i]`` (a row of ``base``) is left
    out of query ``i``'s neighbours (a query's own row)."""
    import faiss

    ub, uq = unit_vectors(base), unit_vectors(queries)
    extra = 0 if exclude is None else 1
    kk = min(k + extra, len(ub))
    sims = np.empty((len(uq), kk), dtype=np.float32)
    ids = np.empty((len(uq), kk), dtype=np.int64)
    for lo in range(0, len(uq), 16_384):
        s, i = faiss.knn(uq[lo : lo + 16_384], ub, kk, metric=faiss.METRIC_INNER_PRODUCT)
        sims[lo : lo + len(s)], ids[lo : lo + len(s)] = s, i
    if exclude is not None:
        sims, ids = drop_rows(sims, ids, np.asarray(exclude), k)
    return sims[:, :k], ids[:, :k]


def drop_rows(
    sims: np.ndarray, ids: np.ndarray, exclude: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove ``exclude[i]`` from row ``i`` of a neighbour table (else its last column); keep
    ``k`` columns (padded with -1 / -inf when the table is too short)."""
    n, width = ids.shape
    is_self = ids == exclude[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), width - 1)
    keep = np.ones(ids.shape, dtype=bool)
    if width:
        keep[np.arange(n), drop] = False
    sims = sims[keep].reshape(n, max(width - 1, 0))
    ids = ids[keep].reshape(n, max(width - 1, 0))
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        ids = np.hstack([ids, np.full((n, pad), -1, dtype=np.int64)])
        sims = np.hstack([sims, np.full((n, pad), -np.inf, dtype=np.float32)])
    return sims[:, :k], ids[:, :k]


def knn_vote(
    neighbour_labels: np.ndarray, neighbour_sims: np.ndarray, n_classes: int
) -> np.ndarray:
    """Majority class among each row's neighbours (labels -1 ignored); ties go to the class with
    the larger summed similarity."""
    labels = np.asarray(neighbour_labels)
    n = len(labels)
    valid = labels >= 0
    safe = np.where(valid, labels, 0)
    rows = np.repeat(np.arange(n), labels.shape[1]).reshape(labels.shape)
    votes = np.zeros((n, n_classes))
    sims = np.nan_to_num(np.asarray(neighbour_sims, dtype=np.float64), neginf=0.0)
    np.add.at(votes, (rows[valid], safe[valid]), 1.0)
    tiebreak = np.zeros((n, n_classes))
    np.add.at(tiebreak, (rows[valid], safe[valid]), sims[valid])
    # Similarities are in [-1, 1]: scaled below one vote, they only break ties.
    return (votes + tiebreak / (2.0 * labels.shape[1] + 2.0)).argmax(axis=1)


def knn_classification(
    features: np.ndarray,
    labels: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    k: int = KNN_K,
) -> dict[str, float]:
    """Cosine kNN: each val row votes among its ``k`` nearest train rows."""
    sims, ids = cosine_neighbours(features[train_rows], features[val_rows], k)
    neighbour_labels = np.where(ids >= 0, labels[train_rows][np.maximum(ids, 0)], -1)
    n_classes = int(labels.max()) + 1
    pred = knn_vote(neighbour_labels, sims, n_classes)
    truth = labels[val_rows]
    return {
        "k": k,
        "accuracy": accuracy(truth, pred),
        "balanced_accuracy": balanced_accuracy(truth, pred),
    }


def stratified_subsample(
    rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int = 0
) -> np.ndarray:
    """``fraction`` of ``rows`` per class (at least one per class), reproducible for a seed
    (the training code's :func:`backend.modelling.metrics.subsample`)."""
    from backend.modelling.metrics import subsample

    return subsample(np.asarray(rows), labels, fraction, seed=seed)


def linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    max_iter: int = PROBE_MAX_ITER,
) -> dict[str, float]:
    """Logistic regression (standardised features, balanced class weights) fitted on
    ``train_rows`` and scored on ``val_rows``. Its regularisation is chosen from ``PROBE_CS``
    by stratified cross-validation (balanced accuracy) on the training rows alone: an encoder
    fine-tuned on those very rows separates them perfectly, and an unregularised probe then
    overfits them (on sdss_gz1: 0.65 on validation with C = 1, 0.71 with the chosen C).
    With fewer than two members in some class, C = 1."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train = np.asarray(features[train_rows], dtype=np.float64)
    y_train = labels[train_rows]
    truth = labels[val_rows]
    chosen = None
    if len(np.unique(y_train)) < 2:
        pred = np.full(len(val_rows), y_train[0] if len(y_train) else -1)
    else:
        folds = min(PROBE_FOLDS, int(np.unique(y_train, return_counts=True)[1].min()))
        if folds >= 2:
            model = LogisticRegressionCV(
                Cs=list(PROBE_CS), cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                class_weight="balanced", scoring="balanced_accuracy", max_iter=max_iter,
            )  # fmt: skip
        else:
            model = LogisticRegression(class_weight="balanced", max_iter=max_iter)
        clf = make_pipeline(StandardScaler(), model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on tiny or separable sets
            clf.fit(x_train, y_train)
        pred = clf.predict(np.asarray(features[val_rows], dtype=np.float64))
        chosen = float(model.C_[0]) if folds >= 2 else 1.0
    return {
        "n_train": len(train_rows),
        "accuracy": accuracy(truth, pred),
        "balanced_accuracy": balanced_accuracy(truth, pred),
        "C": chosen,
    }


# -- similarity and retrieval -------------------------------------------------------------------
def neighbour_labels(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels of a neighbour table (-1 where there is no neighbour or it is unlabelled)."""
    return np.where(ids >= 0, labels[np.maximum(ids, 0)], -1)


def precision_at_k(neighbours: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """Per query: share of its labelled neighbours that have its class (NaN when none is
    labelled). ``neighbours`` holds the neighbours' labels, (n, k), -1 = unlabelled."""
    neighbours = np.asarray(neighbours)
    labelled = neighbours >= 0
    same = (neighbours == np.asarray(query_labels)[:, None]) & labelled
    n = labelled.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, same.sum(axis=1) / n, np.nan)


def per_class_mean(
    values: np.ndarray, query_labels: np.ndarray, n_classes: int
) -> list[float | None]:
    """Mean of ``values`` (NaN ignored) over the queries of each class; None when none."""
    out: list[float | None] = []
    for cls in range(n_classes):
        v = values[(query_labels == cls) & np.isfinite(values)]
        out.append(float(v.mean()) if len(v) else None)
    return out


def average_precision(
    neighbours: np.ndarray, query_labels: np.ndarray, n_relevant: np.ndarray, k: int
) -> np.ndarray:
    """AP@k per query over its ranked neighbours' labels (n, >=k), unlabelled (-1) neighbours
    removed from the ranking first: mean of precision@i at each relevant rank i <= k, divided by
    ``min(n_relevant, k)`` (``n_relevant``: objects of the query's class other than itself).
    NaN for a query with nothing to find."""
    neighbours = np.asarray(neighbours)
    query_labels = np.asarray(query_labels)
    out = np.full(len(neighbours), np.nan)
    for q, (row, cls, total) in enumerate(zip(neighbours, query_labels, n_relevant, strict=True)):
        ranked = row[row >= 0][:k]
        denominator = min(int(total), k)
        if denominator <= 0:
            continue
        hits = ranked == cls
        if not hits.any():
            out[q] = 0.0
            continue
        precision = np.cumsum(hits) / np.arange(1, len(ranked) + 1)
        out[q] = float(precision[hits].sum() / denominator)
    return out


def recall_at_k(scores: np.ndarray, positives: np.ndarray, k: int = ANOMALY_K) -> float:
    """Share of the positive rows found in the ``k`` highest ``scores`` (ties: lower row first)."""
    positives = np.asarray(positives, dtype=bool)
    if not positives.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
    return float(positives[order].sum() / positives.sum())


# -- classifiers ---------------------------------------------------------------------------------
def map_probabilities(
    probs: np.ndarray, model_classes: Sequence[str], classes: Sequence[str], merge: dict[str, str]
) -> tuple[np.ndarray, list[str]]:
    """A classifier's probabilities onto the evaluation's (merged) classes.

    Each model class is renamed through ``merge`` and its probability added to that class's
    column; classes with no evaluation counterpart go to one extra last column (a prediction of
    it is always wrong). Returns ((n, len(classes) + 1) probabilities, unmatched model classes).
    """
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(probs), len(classes) + 1), dtype=np.float64)
    unmatched = []
    for j, name in enumerate(model_classes):
        target = index.get(merge.get(name, name))
        if target is None:
            unmatched.append(name)
            target = len(classes)
        out[:, target] += probs[:, j]
    return out, unmatched


def predicted_classes(table: Any, rows: np.ndarray) -> np.ndarray:
    """A predictions table's decided class names at ``rows``: its ``pred_class`` column (the
    classifier's decision rule), else the argmax of its ``p_*`` columns (older tables)."""
    if "pred_class" in table.columns:
        return table["pred_class"].astype(str).to_numpy()[rows]
    columns = [c for c in table.columns if c.startswith("p_")]
    names = np.asarray([c[2:] for c in columns], dtype=object)
    return names[table[columns].to_numpy(np.float64)[rows].argmax(axis=1)].astype(str)


def map_decisions(
    names: Sequence[str], classes: Sequence[str], merge: dict[str, str]
) -> np.ndarray:
    """Decided class names onto the evaluation's (merged) class indices, as
    :func:`map_probabilities` maps columns (a class with no counterpart: ``len(classes)``)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index.get(merge.get(n, n), len(classes)) for n in names], dtype=np.int64)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray) -> float:
    """The project's top-label ECE (15 equal-width bins, :mod:`backend.modelling.metrics`)."""
    from backend.modelling.metrics import ece

    return ece(probs, labels)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    progress: bool = False,
    desc: str = "bootstrap",
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic(rows)`` over ``resamples`` draws of ``n``
    rows with replacement (seeded)."""
    from tqdm.auto import tqdm

    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for b in tqdm(range(resamples), desc=desc, disable=not progress, leave=False):
        values[b] = statistic(rng.integers(0, n, n))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
