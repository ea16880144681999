"""Which objects to label next (pure numpy / scikit-learn, no torch).

Scores come from the classifier's MC-dropout predictions table (``bald``, ``entropy``,
``p_<class>``): BALD (mutual information between prediction and weights), predictive entropy,
margin (1 - (p1 - p2), the default) or random. A batch is not simply the top ``size`` scores,
which are often near twins: the top ``pool_factor * size`` candidates are thinned by
score-weighted k-means++ seeding (or greedy core-set farthest-point) on L2-normalised
embeddings. With no labels (or no predictions) the batch is a cold start: k-means on the
embeddings, one object nearest each centre.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.latent.paging import sort_key, top_order

STRATEGIES = ("bald", "entropy", "margin", "random")
# bench S1 (3 seeds): margin + diversity reached random's 1,000-label accuracy with 200 labels
# on informative features (BALD + diversity: 300) and kept up with random on the weak demo
# embeddings, where MC-dropout BALD + diversity ended 3 points below random (docs/results.md)
DEFAULT_STRATEGY = "margin"
DIVERSITY = ("kmeans++", "coreset", "none")
MAX_KMEANS_ROWS = 20_000  # cold-start k-means is fitted on a sample of this many rows


def acquisition_scores(predictions: pd.DataFrame, strategy: str, seed: int = 0) -> np.ndarray:
    """Per-object score, higher = more worth labelling."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (strategies: {', '.join(STRATEGIES)})")
    n = len(predictions)
    if strategy == "random":
        return np.random.default_rng(seed).random(n)
    if strategy in ("bald", "entropy"):
        return np.nan_to_num(predictions[strategy].to_numpy(np.float64), nan=0.0)
    probs = predictions[[c for c in predictions.columns if c.startswith("p_")]].to_numpy(float)
    if probs.shape[1] < 2:
        raise ValueError("margin needs at least two p_<class> columns")
    top2 = np.sort(probs, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances (len(x),) from each row of unit-norm ``x`` to unit-norm ``c``."""
    return np.maximum(2.0 - 2.0 * (x @ c), 0.0)


def diversify(
    embeddings: np.ndarray,
    candidates: np.ndarray,
    scores: np.ndarray,
    size: int,
    *,
    method: str = "kmeans++",
    seed: int = 0,
) -> np.ndarray:
    """``size`` of ``candidates`` (best score first) that are spread out in embedding space.

    ``kmeans++``: start from the best candidate, then draw with probability proportional to
    score x squared distance to the nearest chosen one. ``coreset``: greedy farthest point
    (max of score x distance), deterministic.
    """
    if method not in DIVERSITY:
        raise ValueError(f"unknown diversity {method!r} (choices: {', '.join(DIVERSITY)})")
    candidates = np.asarray(candidates)
    size = min(size, len(candidates))
    if method == "none" or size == len(candidates):
        return candidates[:size]
    x = _unit(np.asarray(embeddings[np.sort(candidates)]))
    x = x[np.argsort(np.argsort(candidates))]  # rows back in candidate order
    w = np.asarray(scores, dtype=np.float64)
    w = w - w.min() + 1e-6 * (w.max() - w.min() + 1e-12)
    rng = np.random.default_rng(seed)
    chosen = [int(np.argmax(w))]
    nearest = _sq_dist(x, x[chosen[0]]).astype(np.float64)
    for _ in range(size - 1):
        weight = w * (nearest if method == "kmeans++" else np.sqrt(nearest))
        weight[chosen] = 0.0
        if weight.sum() <= 0:  # all remaining are duplicates of chosen ones
            rest = np.setdiff1d(np.arange(len(x)), chosen)
            pick = int(rest[np.argmax(w[rest])])
        elif method == "kmeans++":
            pick = int(rng.choice(len(x), p=weight / weight.sum()))
        else:
            pick = int(np.argmax(weight))
        chosen.append(pick)
        nearest = np.minimum(nearest, _sq_dist(x, x[pick]))
    return candidates[chosen]


def cold_start(
    embeddings: np.ndarray, size: int, *, exclude: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """One object nearest each of ``size`` k-means centres (objects in ``exclude`` skipped)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = len(embeddings)
    allowed = np.ones(n, bool) if exclude is None else ~np.asarray(exclude, bool)
    rows = np.flatnonzero(allowed)
    size = min(size, len(rows))
    if size == 0:
        return np.empty(0, np.int64)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(rows, min(len(rows), MAX_KMEANS_ROWS), replace=False))
    x = _unit(np.asarray(embeddings[sample]))
    algo = KMeans if len(sample) <= 5_000 else MiniBatchKMeans
    km = algo(n_clusters=size, n_init=1, random_state=seed).fit(x)
    centres = _unit(km.cluster_centers_)
    # nearest sampled object to each centre, each object used once
    dist = 2.0 - 2.0 * (x @ centres.T)
    picked: list[int] = []
    for j in np.argsort(np.bincount(km.labels_, minlength=size))[::-1]:  # big clusters first
        order = np.argsort(dist[:, j])
        pick = next(int(i) for i in order if int(i) not in picked)
        picked.append(pick)
    return sample[np.asarray(picked)]


def next_batch(
    embeddings: np.ndarray,
    predictions: pd.DataFrame | None,
    labelled_mask: np.ndarray,
    strategy: str = DEFAULT_STRATEGY,
    size: int = 50,
    seed: int = 0,
    *,
    diversity: str = "kmeans++",
    pool_factor: int = 10,
) -> np.ndarray:
    """Indices of the next ``size`` unlabelled objects to label, most useful first.

    ``predictions`` rows are in survey order (same as ``embeddings``). With no labels or no
    predictions, a cold start (diverse k-means centres; random strategy stays random).
    """
    labelled = np.asarray(labelled_mask, bool)
    if len(labelled) != len(embeddings):
        raise ValueError(f"labelled_mask has {len(labelled)} rows for {len(embeddings)} objects")
    n_unlabelled = len(labelled) - int(np.count_nonzero(labelled))
    size = min(int(size), n_unlabelled)
    if size <= 0:
        return np.empty(0, np.int64)
    if strategy == "random":
        unlabelled = np.flatnonzero(~labelled)
        return np.random.default_rng(seed).choice(unlabelled, size, replace=False)
    if predictions is None or not labelled.any():
        return cold_start(embeddings, size, exclude=labelled, seed=seed)
    if len(predictions) != len(embeddings):
        raise ValueError(f"predictions have {len(predictions)} rows for {len(embeddings)} objects")
    scores = acquisition_scores(predictions, strategy, seed)
    pool = min(n_unlabelled, max(size, size * pool_factor if diversity != "none" else size))
    key = sort_key(scores)
    key[labelled] = np.inf  # labelled rows last: partial selection over the whole survey
    # unlabelled rows at inf (NaN scores) tie with the labelled ones: take enough to skip them
    tied = bool(np.any(np.isinf(key) & ~labelled))
    top = top_order(key, pool + (len(labelled) - n_unlabelled if tied else 0))
    top = top[~labelled[top]][:pool]
    return diversify(embeddings, top, scores[top], size, method=diversity, seed=seed)
