"""One object's explanation: attribution maps, residual map, scorer contributions, contrast
neighbours and labelled exemplars (arrays and small tables; no drawing here)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from backend.errors import UserError
from backend.explain.context import ExplainContext

N_EXEMPLARS = 3


@dataclass
class Explanation:
    """What :func:`explain_object` found for one object (maps are (C, H, W) float32)."""

    object_id: str
    row: int
    bands: list[str]
    image: np.ndarray
    anomaly_type: str = ""
    mask: np.ndarray | None = None  # (H, W) recorded region of an injected anomaly
    predicted: str | None = None
    runner_up: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    class_map: np.ndarray | None = None
    neighbour_id: str | None = None
    similarity: float | None = None
    similarity_map: np.ndarray | None = None
    residual: np.ndarray | None = None
    anomaly_map: np.ndarray | None = None
    scorers: dict[str, float] = field(default_factory=dict)  # rank-normalised, in [0, 1]
    anomaly_score: float | None = None
    ordinary_neighbours: list[str] = field(default_factory=list)
    exemplars: dict[str, list[str]] = field(default_factory=dict)  # class -> object ids
    seconds: float = 0.0


def _cosine_neighbours(
    ctx: ExplainContext, row: int, k: int, allowed: np.ndarray | None
) -> np.ndarray:
    sims = ctx.unit @ ctx.unit[row]
    sims[row] = -np.inf
    if allowed is not None:
        sims[~allowed] = -np.inf
    k = int(min(k, np.isfinite(sims).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-sims, k - 1)[:k]
    return top[np.argsort(-sims[top])]


def _ids(ctx: ExplainContext, rows: np.ndarray) -> list[str]:
    ids = ctx.survey.catalog["object_id"].to_numpy()
    return [str(ids[r]) for r in rows]


def _classify(ctx: ExplainContext, expl: Explanation) -> None:
    import torch

    from models.explain import class_attribution, embedding_rows

    clf = ctx.classifier
    mirrored = getattr(clf, "mirror_permutation", None) is not None
    with torch.no_grad():
        x = torch.as_tensor(expl.image[None])
        probs = clf.predict_proba(embedding_rows(ctx.encoder, x, mirrored))[0].numpy()
    order = np.argsort(-probs)
    best = int(clf.decide(probs[None])[0]) if hasattr(clf, "decide") else int(order[0])
    second = next(int(i) for i in order if int(i) != best)
    expl.predicted, expl.runner_up = clf.classes[best], clf.classes[second]
    expl.probabilities = {c: float(p) for c, p in zip(clf.classes, probs, strict=True)}
    expl.class_map = class_attribution(ctx.encoder, clf, expl.image, best)
    if ctx.labels is not None:
        labels = ctx.labels.to_numpy()
        for name in (expl.predicted, expl.runner_up):
            rows = _cosine_neighbours(ctx, expl.row, N_EXEMPLARS, labels == name)
            expl.exemplars[name] = _ids(ctx, rows)


def _anomalies(ctx: ExplainContext, expl: Explanation) -> None:
    from models.explain import anomaly_attribution, residual_map

    allowed = None
    if ctx.anomaly is not None:
        table = ctx.anomaly
        scorers = [c for c in table.columns if f"{c}_raw" in table.columns]
        expl.scorers = {c: float(table[c].iloc[expl.row]) for c in scorers}
        if "anomaly" in table:
            expl.anomaly_score = float(table["anomaly"].iloc[expl.row])
            score = table["anomaly"].to_numpy(dtype=np.float64)
            allowed = np.nan_to_num(score, nan=1.0) < np.nanmedian(score)
    expl.ordinary_neighbours = _ids(ctx, _cosine_neighbours(ctx, expl.row, N_EXEMPLARS, allowed))
    if ctx.autoencoder is not None:
        expl.residual = residual_map(ctx.autoencoder, expl.image)
        expl.anomaly_map = anomaly_attribution(ctx.autoencoder, expl.image)


def explain_object(
    ctx: ExplainContext, object_id: str, neighbour: str | None = None
) -> Explanation:
    """Explain ``object_id``: the classifier's attribution for its prediction and labelled
    exemplars of the predicted and runner-up classes (with a classifier), the similarity
    attribution to ``neighbour`` (default: the nearest neighbour), the autoencoder's residual
    and attribution, each scorer's share and the nearest ordinary neighbours."""
    from models.explain import similarity_attribution

    start = time.perf_counter()
    row = ctx.row_of(object_id)
    catalog = ctx.survey.catalog
    image = np.asarray(ctx.survey.cutout(row), dtype=np.float32)
    kind = str(catalog["anomaly_type"].iloc[row]) if "anomaly_type" in catalog else ""
    expl = Explanation(
        object_id=str(object_id),
        row=row,
        bands=ctx.survey.bands,
        image=image,
        anomaly_type=kind if kind not in ("nan", "None") else "",
        mask=ctx.masks.get(row) if ctx.masks is not None else None,
    )
    if neighbour is None:
        nearest = _cosine_neighbours(ctx, row, 1, None)
        other = int(nearest[0]) if len(nearest) else None
    else:
        other = ctx.row_of(neighbour)
        if other == row:
            raise UserError(f"--neighbour {neighbour!r} is the object itself; pick another id")
    if other is not None:
        expl.neighbour_id = _ids(ctx, np.array([other]))[0]
        expl.similarity = float(ctx.unit[row] @ ctx.unit[other])
        other_image = np.asarray(ctx.survey.cutout(other), dtype=np.float32)
        expl.similarity_map = similarity_attribution(ctx.encoder, image, other_image)
    if ctx.classifier is not None:
        _classify(ctx, expl)
    _anomalies(ctx, expl)
    expl.seconds = time.perf_counter() - start
    return expl
