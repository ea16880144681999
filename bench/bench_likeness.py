"""Q3: which ``likeness`` (objects near the anomalies a person labelled) ranks held-out ones best.

    LATENTSKY_HOME=DIR .venv/bin/python bench/bench_likeness.py --survey gz1 \
        --label-column gz1_label --rare merger,dont_know --encoders v0018,v0017,v0003,v0001

Variants, each from the rare objects of the stored validation split's training part only:

- ``share_kK``: the share of an object's K nearest neighbours (the kNN graph; the product's is
  ``share_k10``, the graph the ``knn`` scorer reads) that are labelled anomalies;
- ``weighted_kK``: the same, weighted by inverse squared distance;
- ``labelled_kK``: the share of anomalies among an object's K nearest *labelled* objects (needs
  a search of every object among the labelled ones, and labelled ordinary objects);
- ``outward_KK``: votes from each labelled anomaly's K nearest neighbours (a search from the
  labelled objects outward, scattered).

Each enters ``fisher(likeness,asymmetry)`` and ``mean(likeness,asymmetry)`` and is measured by
``split_half`` (likeness from a stratified half of the training part, average precision on the
other half, ``--draws`` times: no val label read) and on the val rows (recall@K, K = 100 n_val /
N, and average precision). Also times :func:`backend.latent.likeness.likeness` on a random graph
of ``--speed-n`` objects (k = 10). Writes ``bench/results/likeness_gz1.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.latent.anomaly import AnomalyRanker
from backend.latent.combination import average_precision, parse
from backend.latent.combination import evaluate as formula_value
from backend.latent.likeness import likeness
from backend.latent.scorers import knn_graph, rank_normalise
from backend.latent.vectors import search_chunked, small_ip_index, unit_rows
from backend.products import open_embeddings
from bench.bench_anomaly_choice import labelled_split, survey_arguments

RESULTS = Path(__file__).resolve().parent / "results" / "likeness_gz1.json"
FORMULAS = ("fisher(likeness,asymmetry)", "mean(likeness,asymmetry)")
K_MAX = 30


def recall(score: np.ndarray, positive: np.ndarray, k: int) -> float:
    order = np.argsort(-score, kind="stable")[:k]
    return float(positive[order].sum() / max(positive.sum(), 1))


def nearest_among(unit: np.ndarray, among: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` nearest rows of ``among`` (row numbers), itself left out."""
    _, found = search_chunked(small_ip_index(unit[among]), unit, k + 1)
    found = np.where(found >= 0, among[np.maximum(found, 0)], -1)
    rows = np.arange(len(unit))
    own = found == rows[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)  # itself, else the farthest
    keep = np.ones(found.shape, dtype=bool)
    keep[rows, drop] = False
    return found[keep].reshape(len(unit), k)


def variants(
    unit: np.ndarray, dist: np.ndarray, ids: np.ndarray, positive: np.ndarray,
    labelled: np.ndarray,
) -> dict[str, Callable[[], np.ndarray]]:  # fmt: skip
    """The likeness variants (raw values) from the labelled anomalies ``positive`` and the
    labelled objects ``labelled`` (anomalies or not)."""

    def weighted(k: int) -> np.ndarray:
        w = 1.0 / (dist[:, :k] + 1e-3) ** 2
        hit = positive[ids[:, :k]] & (ids[:, :k] != np.arange(len(ids))[:, None])
        return (w * hit).sum(axis=1) / w.sum(axis=1)

    def labelled_share(k: int) -> np.ndarray:
        near = nearest_among(unit, np.flatnonzero(labelled), k)
        return (positive[np.maximum(near, 0)] & (near >= 0)).mean(axis=1)

    def outward(k: int) -> np.ndarray:
        rows = np.flatnonzero(positive)
        _, found = search_chunked(small_ip_index(unit), unit[rows], k + 1)
        found = np.where(found == rows[:, None], -1, found)
        votes = np.bincount(found[found >= 0], minlength=len(unit))
        return votes.astype(np.float64)

    out: dict[str, Callable[[], np.ndarray]] = {}
    for k in (5, 10, 20, 30):
        out[f"share_k{k}"] = lambda k=k: likeness(ids[:, :k], positive)
    for k in (10, 30):
        out[f"weighted_k{k}"] = lambda k=k: weighted(k)
        out[f"labelled_k{k}"] = lambda k=k: labelled_share(k)
        out[f"outward_K{k}"] = lambda k=k: outward(k)
    return out


def label_merge_speed(n: int) -> dict[str, float]:
    """Seconds to read a catalog label column of ``n`` objects as class indices
    (:func:`backend.modelling.train.catalog_labels`), and as it was done per object before."""
    from types import SimpleNamespace

    import pandas as pd

    from backend.modelling.train import catalog_labels

    kinds = np.array(["spiral", "elliptical", "merger", "", None, "edge_on"], dtype=object)
    values = pd.Series(kinds[np.random.default_rng(3).integers(0, len(kinds), n)])
    survey = SimpleNamespace(name="bench", catalog=pd.DataFrame({"label": values}))
    t0 = time.perf_counter()
    labels, classes = catalog_labels(survey, "label")  # type: ignore[arg-type]
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    present = values.notna() & (values.astype(str).str.strip() != "")
    old = np.full(n, -1, np.int64)
    old[present.to_numpy()] = values[present].astype(str).map(classes.index).to_numpy()
    names = np.asarray(classes, dtype=object)[old]  # the old merge's per-object pass
    lookup = {c: i for i, c in enumerate(classes)}
    pairs = zip(names, old, strict=True)
    merged = np.array([lookup.get(x, -1) if y >= 0 else -1 for x, y in pairs], np.int64)
    slow = time.perf_counter() - t0
    if not np.array_equal(merged, labels):
        raise SystemExit("catalog_labels disagrees with the per-object reading")
    return {"catalog_labels_s": fast, "catalog_labels_per_object_s": slow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    survey_arguments(parser, draws=10, out=RESULTS)
    parser.add_argument("--speed-n", type=int, default=1_000_000)
    args = parser.parse_args()
    started = time.perf_counter()
    s, rare, val, train, pixels = labelled_split(args)
    n = len(s.survey)
    val_k = max(1, round(100 * val.sum() / n))
    rng = np.random.default_rng(args.seed)
    rows = np.flatnonzero(train)
    halves = []
    for _ in range(args.draws):
        half = np.zeros(n, dtype=bool)
        for group in (rows[rare[rows]], rows[~rare[rows]]):
            half[rng.permutation(group)[: len(group) // 2]] = True
        halves.append(half)
    result: dict[str, Any] = {
        "survey": s.survey.name, "n": n, "n_val_rare": int((rare & val).sum()),
        "n_train_rare": int((rare & train).sum()), "val_k": val_k, "draws": args.draws,
        "encoders": {},
    }  # fmt: skip
    for version in args.encoders.split(","):
        embeddings = np.asarray(open_embeddings(s.survey.name, "encoder", version))
        unit = unit_rows(embeddings)
        dist, ids = knn_graph(unit, K_MAX)
        table = AnomalyRanker.fit(
            embeddings, scorers=("knn", "asymmetry"), pixels=pixels, seed=args.seed
        ).scores.sort_values("index")  # fmt: skip
        norm = {"asymmetry": table["asymmetry"].to_numpy()}
        out: dict[str, Any] = {}
        full = variants(unit, dist, ids, rare & train, train)
        drawn = [variants(unit, dist, ids, rare & h, h) for h in halves]
        for name, make in full.items():
            like = rank_normalise(make())
            half_like = [rank_normalise(d[name]()) for d in drawn]
            out[name] = {}
            for text in FORMULAS:
                value = formula_value(parse(text), {**norm, "likeness": like})
                ap = [
                    average_precision(
                        formula_value(parse(text), {**norm, "likeness": hl})[train & ~h],
                        rare[train & ~h],
                    )
                    for hl, h in zip(half_like, halves, strict=True)
                ]
                out[name][text] = {
                    "split_half_ap": round(float(np.mean(ap)), 4),
                    "val_recall": round(recall(value[val], rare[val], val_k), 4),
                    "val_ap": round(average_precision(value[val], rare[val]), 4),
                    "all_recall_at_100": round(recall(value, rare, 100), 4),
                }
        result["encoders"][version] = out
        best = max(out, key=lambda v: out[v][FORMULAS[0]]["split_half_ap"])
        print(
            f"{version}: share_k10 split-half AP {out['share_k10'][FORMULAS[0]]['split_half_ap']:.3f}"
            f"; best {best} {out[best][FORMULAS[0]]['split_half_ap']:.3f} ({FORMULAS[0]})",
            flush=True,
        )
    mean = {
        name: {
            text: round(float(np.mean([e[name][text]["split_half_ap"]
                                       for e in result["encoders"].values()])), 4)
            for text in FORMULAS
        }
        for name in next(iter(result["encoders"].values()))
    }  # fmt: skip
    result["split_half_ap_mean"] = mean
    for name, by in mean.items():
        print(f"  {name:12s} " + "  ".join(f"{t} {v:.3f}" for t, v in by.items()))
    graph = np.random.default_rng(1).integers(0, args.speed_n, size=(args.speed_n, 10))
    positive = np.random.default_rng(2).random(args.speed_n) < 0.001
    t0 = time.perf_counter()
    likeness(graph, positive)
    result["speed"] = {"n": args.speed_n, "k": 10, "likeness_s": time.perf_counter() - t0}
    print(f"likeness of {args.speed_n:,} objects (k = 10): {result['speed']['likeness_s']:.2f} s")
    result["speed"].update(label_merge_speed(args.speed_n))
    print(
        f"a catalog label column of {args.speed_n:,} objects as class indices: "
        f"{result['speed']['catalog_labels_s']:.2f} s (per object, as before: "
        f"{result['speed']['catalog_labels_per_object_s']:.2f} s)"
    )
    result["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
