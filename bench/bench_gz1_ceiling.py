"""Is sdss_gz1's ceiling the representation or the labels? An independent representation says.

Every learnt representation tried on sdss_gz1 (self-supervised, fine-tuned on labels, supervised,
SupCon, higher resolution) stops at a probe balanced accuracy of ~0.70. This benchmark builds a
representation that shares nothing with them: 26 classical morphometrics of the central galaxy,
measured on the survey's own cutouts (the definitions astronomers used before deep learning:
second-moment axis ratio, Petrosian-like radii and concentration C = 5 log(r80/r20) (Conselice
2003), Gini and M20 (Lotz et al. 2004), rotational asymmetry and smoothness, inner / outer / total
colours from the gri composite, neighbours' flux, peaks, the light centroid's offset from the
cutout centre). They are a fast numpy approximation of those definitions on a 1.5σ segmentation
of the summed bands (statmorph would take ~0.5 s per galaxy on these cores), enough to ask the
question, not a product.

It then runs, with the same 5-fold stratified cross-validation for every representation: a
class-balanced logistic probe (balanced accuracy, per-class recall), precision@10 of the nearest
neighbours per class, and the recall@100 of the rare class (merger ∪ dont_know) for each
morphometric, an isolation forest and a kNN distance on them. Run in a data root where the
survey is ingested and its encoders' embeddings made (``bench/bench_gz1.py`` makes one)::

    LATENTSKY_HOME=DIR .venv/bin/python bench/bench_gz1_ceiling.py --encoders v0001,v0003

Prints the figures and writes ``bench/results/gz1_ceiling.json`` (``--json`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
MERGE = {"spiral_cw": "spiral", "spiral_acw": "spiral"}
RARE = ("merger", "dont_know")
NAMES = (
    "axis_ratio", "log_major_moment", "log_r50", "log_r90", "concentration", "gini", "m20",
    "asymmetry", "smoothness", "inner_r_g", "inner_g_b", "outer_r_g", "outer_g_b", "total_r_g",
    "total_g_b", "gradient_r_g", "gradient_g_b", "neighbour_flux", "neighbour_segments", "peaks",
    "log_flux", "area", "log_noise", "centroid_offset", "saturated_pixels", "ellipticity",
)  # fmt: skip


def _background(band: np.ndarray, edge: int = 8) -> float:
    border = np.concatenate(
        [band[:edge].ravel(), band[-edge:].ravel(), band[:, :edge].ravel(), band[:, -edge:].ravel()]
    )
    return float(np.median(border))


def central_segment(light: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The 1.5σ segment that covers most of the central 8×8 pixels (a disc if none), all labels."""
    mask = ndi.gaussian_filter(light, 1.0) > 1.5 * noise
    labels, _ = ndi.label(mask)
    h, w = light.shape
    core = labels[h // 2 - 4 : h // 2 + 4, w // 2 - 4 : w // 2 + 4]
    ids, counts = np.unique(core[core > 0], return_counts=True)
    if len(ids) == 0:
        yy, xx = np.mgrid[0:h, 0:w]
        return (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < 100, labels, 0
    return (
        ndi.binary_fill_holes(labels == ids[np.argmax(counts)]),
        labels,
        int(ids[np.argmax(counts)]),
    )


def morphometrics(image: np.ndarray) -> np.ndarray:
    """The 26 morphometrics (``NAMES``) of the central galaxy of one (bands, H, W) cutout."""
    light = image.sum(0).astype(np.float64)
    border = np.concatenate(
        [light[:8].ravel(), light[-8:].ravel(), light[:, :8].ravel(), light[:, -8:].ravel()]
    )
    light = light - np.median(border)
    noise = 1.4826 * float(np.median(np.abs(border - np.median(border)))) + 1e-6
    seg, labels, _ = central_segment(light, noise)
    h, w = light.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    flux = np.clip(light, 0, None) * seg
    total = flux.sum() + 1e-9
    cx, cy = (flux * xx).sum() / total, (flux * yy).sum() / total
    dx, dy = xx - cx, yy - cy
    mxx, myy, mxy = ((flux * a * b).sum() / total for a, b in ((dx, dx), (dy, dy), (dx, dy)))
    half_trace, det = (mxx + myy) / 2, mxx * myy - mxy**2
    disc = np.sqrt(max(half_trace**2 - det, 0.0))
    major, minor = half_trace + disc, max(half_trace - disc, 1e-9)
    axis_ratio = float(np.sqrt(minor / max(major, 1e-9)))
    radius = np.hypot(dx, dy)
    order = np.argsort(radius[seg])
    cumulative = np.cumsum(flux[seg][order]) / total
    sorted_r = radius[seg][order]
    r20, r50, r80, r90 = (
        sorted_r[min(int(np.searchsorted(cumulative, p)), len(sorted_r) - 1)] + 0.5
        for p in (0.2, 0.5, 0.8, 0.9)
    )
    values = np.sort(flux[seg])
    n = len(values)
    gini = (
        float(
            ((2 * np.arange(1, n + 1) - n - 1) * values).sum()
            / (values.mean() * n * (n - 1) + 1e-9)
        )
        if n > 1
        else 0.0
    )
    moment = flux[seg] * radius[seg] ** 2
    brightest = np.argsort(flux[seg])[::-1]
    k = int(np.searchsorted(np.cumsum(flux[seg][brightest]), 0.2 * total)) + 1
    m20 = float(np.log10(moment[brightest][:k].sum() / (moment.sum() + 1e-9) + 1e-9))
    rotated = ndi.shift(light, (2 * (cy - (h - 1) / 2), 2 * (cx - (w - 1) / 2)), order=1)[
        ::-1, ::-1
    ]
    aperture = radius < 1.5 * r90
    absolute = np.abs(light)[aperture].sum() + 1e-9
    asymmetry = float(np.abs(light - rotated)[aperture].sum() / absolute)
    smooth = ndi.gaussian_filter(light, max(r50 / 4, 0.5))
    smoothness = float(
        np.clip(light - smooth, 0, None)[aperture & (radius > 0.25 * r90)].sum() / absolute
    )

    def colours(region: np.ndarray) -> tuple[float, float]:
        fluxes = [
            np.clip(image[b] - _background(image[b]), 0, None)[region].sum() + 1e-3
            for b in range(3)
        ]
        return float(np.log(fluxes[0] / fluxes[1])), float(np.log(fluxes[1] / fluxes[2]))

    inner = colours(seg & (radius < r50))
    outer = colours(seg & (radius >= r50) & (radius < r90))
    whole = colours(seg)
    near = radius < 2 * r90
    others = (labels > 0) & ~seg & near
    neighbour_flux = float((np.clip(light, 0, None) * others).sum() / total)
    neighbour_segments = float(len(np.unique(labels[others])))
    smoothed = ndi.gaussian_filter(light, 1.0)
    peaks = float(
        ((smoothed == ndi.maximum_filter(smoothed, 5)) & seg & (smoothed > 5 * noise)).sum()
    )
    saturated = float((image.max(0) >= 0.99 * image.max()).sum())
    return np.array(
        [
            axis_ratio, np.log(major + 1), np.log(r50), np.log(r90), 5 * np.log10(r80 / r20), gini, m20,
            asymmetry, smoothness, *inner, *outer, *whole, inner[0] - outer[0], inner[1] - outer[1],
            neighbour_flux, neighbour_segments, peaks, np.log(total), float(seg.sum()), np.log(noise),
            float(np.hypot(cx - (w - 1) / 2, cy - (h - 1) / 2)), saturated, 1 - axis_ratio,
        ],
        dtype=np.float32,
    )  # fmt: skip


def survey_morphometrics(images: Any, block: int = 64) -> np.ndarray:
    """Morphometrics of every cutout of a (N, bands, H, W) array-like, read block by block."""
    from tqdm import tqdm

    out = np.zeros((images.shape[0], len(NAMES)), np.float32)
    for start in tqdm(range(0, images.shape[0], block), desc="morphometrics", unit="block"):
        for i, image in enumerate(np.asarray(images[start : start + block])):
            out[start + i] = morphometrics(image)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def probe(features: np.ndarray, y: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Class-balanced logistic probe, 5-fold stratified cross-validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, recall_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced")
    )
    pred = cross_val_predict(
        model, features, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)
    )
    recall = recall_score(y, pred, average=None)
    return {
        "balanced_accuracy": round(float(balanced_accuracy_score(y, pred)), 3),
        "accuracy": round(float((pred == y).mean()), 3),
        "recall": {c: round(float(r), 3) for c, r in zip(classes, recall, strict=True)},
    }


def precision_at_10(
    features: np.ndarray, y: np.ndarray, classes: list[str], unit: bool
) -> dict[str, float]:
    """Mean fraction of each object's 10 nearest neighbours that share its class, per class."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import QuantileTransformer

    if unit:
        x = features / np.linalg.norm(features, axis=1, keepdims=True)
    else:
        x = QuantileTransformer(output_distribution="normal", random_state=0).fit_transform(
            features
        )
    _, idx = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x)
    same = (y[idx[:, 1:]] == y[:, None]).mean(1)
    return {c: round(float(same[y == i].mean()), 3) for i, c in enumerate(classes)}


def rare_recall(morph: np.ndarray, rare: np.ndarray) -> dict[str, float]:
    """Recall@100 of the rare class for each morphometric (either sign) and two outlier scores."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import QuantileTransformer

    def recall(score: np.ndarray) -> float:
        return round(float(rare[np.argsort(-score)[:100]].sum() / rare.sum()), 3)

    out = {name: max(recall(morph[:, i]), recall(-morph[:, i])) for i, name in enumerate(NAMES)}
    x = QuantileTransformer(output_distribution="normal", random_state=0).fit_transform(morph)
    out["isolation_forest"] = recall(
        -IsolationForest(n_estimators=300, random_state=0).fit(x).score_samples(x)
    )
    dist, _ = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x)
    out["knn_distance"] = recall(dist[:, 1:].mean(1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", default="gz1")
    parser.add_argument("--label-column", default="gz1_label")
    parser.add_argument(
        "--encoders", default="", help="comma-separated encoder versions to compare"
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "gz1_ceiling.json"))
    args = parser.parse_args()

    from backend.products import open_embeddings
    from backend.survey import Survey

    started = time.time()
    load0 = os.getloadavg()[0]
    survey = Survey.open(args.survey)
    labels = survey.catalog[args.label_column].astype(str).replace(MERGE).to_numpy()
    classes, y = np.unique(labels, return_inverse=True)
    classes = [str(c) for c in classes]
    morph = survey_morphometrics(survey.images)
    result: dict[str, Any] = {
        "survey": args.survey,
        "classes": dict(zip(classes, np.bincount(y).tolist(), strict=True)),
        "representations": {},
    }

    def add(name: str, features: np.ndarray, unit: bool) -> None:
        entry = {"dim": int(features.shape[1]), "probe": probe(features, y, classes)}
        entry["precision_at_10"] = precision_at_10(features, y, classes, unit)
        result["representations"][name] = entry
        print(name, json.dumps(entry), flush=True)

    add("morphometrics", morph, unit=False)
    for version in filter(None, args.encoders.split(",")):
        emb = np.asarray(open_embeddings(args.survey, "encoder", version), dtype=np.float32)
        add(f"encoder_{version}", emb, unit=True)
        scale = np.linalg.norm(emb, axis=1, keepdims=True)
        add(f"encoder_{version}+morphometrics", np.hstack([emb / scale, morph]), unit=False)
    rare = np.isin(labels, RARE)
    result["rare_recall_at_100"] = rare_recall(morph, rare)
    print("rare recall@100", json.dumps(result["rare_recall_at_100"]), flush=True)
    result["seconds"] = round(time.time() - started, 1)
    result["load_average_before_after"] = [load0, os.getloadavg()[0]]
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    path = Path(args.json)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    print("wrote", path)


if __name__ == "__main__":
    main()
