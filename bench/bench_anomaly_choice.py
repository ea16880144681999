"""Q3: an anomaly ranking whose scorer combination a survey's labelled anomalies choose.

    LATENTSKY_HOME=DIR .venv/bin/python bench/bench_anomaly_choice.py --survey gz1 \
        --label-column gz1_label --rare merger,dont_know --encoders v0018,v0017,v0003,v0001

For each encoder, every scorer the candidates read is run once (as ``score`` does, with the
rare objects of the stored validation split's training part as the labelled anomalies, so
``likeness`` is scored from them: :mod:`backend.latent.likeness`), then every candidate formula
of :mod:`backend.latent.combination` (the likeness ones too), the product's default and the
formula :func:`~backend.latent.combination.choose` picks from those rare objects (what ``score``
does for a survey whose schema declares those classes anomalies) are measured:

- ``all``: recall@100 of every rare object in the whole survey (the target's figure; most of
  those objects are in the training part, which the choice reads);
- ``val``: recall@K of the rare val objects among the val rows (K = 100 x n_val / N) and the
  average precision there: no val label steers the choice (nor, for a fine-tuned encoder, its
  training);
- ``split_half``: the choice made on a random stratified half of the training part and
  measured (recall@K, K scaled to the half) on the other half, ``--draws`` times: what the
  choice gains outside the objects it was made on, with more objects than the val part holds
  (``likeness`` recomputed from the half's rare objects only, so the other half's labels never
  feed it).

Also reads the stored ``anomaly.parquet`` of each encoder when present (its formula and recall).
Writes ``bench/results/anomaly_choice_gz1.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.evaluation.runner import setup
from backend.latent.anomaly import AnomalyRanker
from backend.latent.combination import (
    DEFAULT_FORMULA,
    LIKENESS,
    average_precision,
    candidates_for,
    choose,
    needed_scorers,
    parse,
)
from backend.latent.combination import evaluate as formula_value
from backend.latent.image_scores import read_pixel_scores
from backend.latent.likeness import likeness
from backend.latent.scorers import knn_graph, rank_normalise
from backend.latent.source import ANOMALY_FILE, latent_dir
from backend.latent.vectors import unit_rows
from backend.products import open_embeddings

RESULTS = Path(__file__).resolve().parent / "results" / "anomaly_choice_gz1.json"
TOP = 100
# unsupervised rules measured beside the candidates (not chosen from; see bench_anomaly_s3.py
# for the same rules on the demo's injected anomalies)
VARIANTS = (
    "mean(knn,sharpness,asymmetry)",
    "mean(iforest,knn,sharpness,asymmetry)",
    "max(iforest,knn,asymmetry)",
    "mean(iforest,asymmetry)",
    "max(knn,sharpness,fisher(iforest,asymmetry))",
    "max(sharpness,mean(iforest,knn,asymmetry))",
)


def recall(score: np.ndarray, positive: np.ndarray, k: int) -> float:
    order = np.argsort(-score, kind="stable")[:k]
    return round(float(positive[order].sum() / max(positive.sum(), 1)), 4)


def scaled_k(rows: int, n: int) -> int:
    return max(1, round(TOP * rows / n))


def measure(value: np.ndarray, rare: np.ndarray, val: np.ndarray) -> dict[str, float]:
    return {
        "all": recall(value, rare, TOP),
        "val": recall(value[val], rare[val], scaled_k(int(val.sum()), len(rare))),
        "val_ap": round(average_precision(value[val], rare[val]), 4),
    }


def split_half(
    norm: dict[str, np.ndarray], rare: np.ndarray, train: np.ndarray, draws: int, seed: int,
    graph: np.ndarray | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Choose on a stratified half of the training rows, measure on the other half; likeness
    from the half's rare objects only (``graph``: the kNN graph's ids; None: no likeness)."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(train)
    picked, chosen_r, default_r = [], [], []
    for _ in range(draws):
        half = np.zeros(len(rare), dtype=bool)
        for group in (rows[rare[rows]], rows[~rare[rows]]):
            half[rng.permutation(group)[: len(group) // 2]] = True
        other = train & ~half
        drawn = {k: v for k, v in norm.items() if k != LIKENESS}  # never the full one
        if graph is not None:
            drawn[LIKENESS] = rank_normalise(likeness(graph, rare & half))
        choice = choose(drawn, rare, ~half)  # everything outside the half is held out
        k = scaled_k(int(other.sum()), len(rare))
        picked.append(choice.formula)
        value = formula_value(parse(choice.formula), drawn)
        chosen_r.append(recall(value[other], rare[other], k))
        default = formula_value(parse(DEFAULT_FORMULA), drawn)
        default_r.append(recall(default[other], rare[other], k))
    return {
        "draws": draws,
        "k": scaled_k(len(rows) - len(rows) // 2, len(rare)),
        "chosen_recall_mean": round(float(np.mean(chosen_r)), 4),
        "chosen_recall_sd": round(float(np.std(chosen_r)), 4),
        "default_recall_mean": round(float(np.mean(default_r)), 4),
        "default_recall_sd": round(float(np.std(default_r)), 4),
        "picked": {f: picked.count(f) for f in dict.fromkeys(picked)},
    }


# label-reading scorers measured beside the product (not in it; its own is ``likeness``, the
# share of an object's 10 nearest neighbours that are training-part rare objects): "p_rare", the
# active classifier's probability of the rare classes (trained on the training part)
EXTRAS = (
    "max(likeness,asymmetry)",
    "mean(iforest,knn,asymmetry,likeness)",
    "fisher(iforest,knn,asymmetry,likeness)",
    "p_rare",
    "mean(p_rare,asymmetry)",
    "mean(iforest,knn,asymmetry,p_rare)",
)


def label_scorers(version: str, survey: str, classes: list[str]) -> dict[str, np.ndarray]:
    """The classifier's scorer of :data:`EXTRAS` (rank percentiles), when it read ``version``."""
    from backend.pipeline.storage import read_predictions
    from backend.registry import ModelRegistry

    out: dict[str, np.ndarray] = {}
    classifier = ModelRegistry().active(survey, "classifier")
    source = classifier and classifier.config.get("embedding_source", {}).get("version")
    if classifier is not None and str(source) == version:
        table = read_predictions(survey, "classifier", classifier.version)
        cols = [f"p_{c}" for c in classes if f"p_{c}" in table.columns]
        if cols:
            out["p_rare"] = rank_normalise(table[cols].to_numpy().sum(axis=1))
    return out


def survey_arguments(parser: argparse.ArgumentParser, draws: int, out: Path) -> None:
    """The survey, its labels, rare classes and encoders (sdss_gz1's by default), as the
    labelled-anomaly benches take them."""
    parser.add_argument("--survey", default="gz1")
    parser.add_argument("--label-column", default="gz1_label")
    parser.add_argument("--rare", default="merger,dont_know")
    parser.add_argument("--merge", default="spiral_cw,spiral_acw=spiral")
    parser.add_argument("--encoders", default="v0018")
    parser.add_argument("--draws", type=int, default=draws)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=out)


def labelled_split(
    args: argparse.Namespace,
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(evaluation setup, rare, val, train masks over the survey's rows, its pixel scores)."""
    names, target = args.merge.split("=") if args.merge else ("", "")
    merge = {n: target for n in names.split(",") if n}
    s = setup(args.survey, args.label_column, merge=merge, rare=args.rare.split(","))
    n = len(s.survey)
    rare = np.isin(s.y, s.rare_idx)
    val = np.zeros(n, dtype=bool)
    val[s.val_rows] = True
    train = np.zeros(n, dtype=bool)
    train[s.train_rows] = True
    pixels, _ = read_pixel_scores(s.survey)
    return s, rare, val, train, pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    survey_arguments(parser, draws=20, out=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    s, rare, val, train, pixels = labelled_split(args)
    n = len(s.survey)
    print(
        f"{s.survey.name}: {n:,} objects, {int(rare.sum())} rare ({args.rare}); val "
        f"{int(val.sum())} objects ({int((rare & val).sum())} rare), train {int(train.sum())} "
        f"({int((rare & train).sum())} rare); recall@{TOP} all, "
        f"@{scaled_k(int(val.sum()), n)} val"
    )
    result: dict[str, Any] = {
        "survey": s.survey.name, "n": n, "rare": args.rare.split(","),
        "n_rare": int(rare.sum()), "n_val": int(val.sum()), "n_val_rare": int((rare & val).sum()),
        "n_train_rare": int((rare & train).sum()), "top": TOP,
        "val_k": scaled_k(int(val.sum()), n), "split": s.split_path,
        "random_recall": round(TOP / n, 4), "encoders": {},
    }  # fmt: skip
    for version in args.encoders.split(","):
        embeddings = np.asarray(open_embeddings(s.survey.name, "encoder", version))
        _, graph = knn_graph(unit_rows(embeddings), 10)  # the graph likeness reads (k = 10)
        table = AnomalyRanker.fit(
            embeddings, scorers=needed_scorers(), pixels=pixels, seed=args.seed,
            labelled=(rare & train, ~train),
        ).scores.sort_values("index")  # fmt: skip
        norm = {c: table[c].to_numpy() for c in (*needed_scorers(), LIKENESS) if c in table}
        candidates = {
            text: measure(formula_value(parse(text), norm), rare, val)
            for text in candidates_for(norm)
        }
        variants = {text: measure(formula_value(parse(text), norm), rare, val) for text in VARIANTS}
        scorers = {c: measure(rank_normalise(norm[c]), rare, val) for c in norm}
        choice = choose(norm, rare, ~train)  # what `score` does: val (and unlabelled) held out
        out: dict[str, Any] = {
            "default": {"formula": DEFAULT_FORMULA, **candidates[DEFAULT_FORMULA]},
            "chosen": {**choice.to_dict(), **candidates[choice.formula]},
            "candidates": candidates,
            "variants": variants,
            "scorers": scorers,
            "split_half": split_half(norm, rare, train, args.draws, args.seed, graph),
        }
        stored = latent_dir(s.survey.name, version) / ANOMALY_FILE
        if stored.is_file():
            kept = AnomalyRanker.load(stored).scores.sort_values("index")
            attrs = kept.attrs.get("combination") or {}
            out["stored"] = {
                "formula": attrs.get("formula") or kept.attrs.get("combined_with"),
                **measure(kept["anomaly"].to_numpy(), rare, val),
            }
        extra = label_scorers(version, s.survey.name, args.rare.split(","))
        out["label_scorers"] = {
            text: measure(formula_value(parse(text) if "(" in text else text, {**norm, **extra}),
                          rare, val)
            for text in EXTRAS
            if set(parse(text).scorers if "(" in text else [text]) <= {*norm, *extra}
        }  # fmt: skip
        result["encoders"][version] = out
        d, c, h = out["default"], out["chosen"], out["split_half"]
        print(
            f"{version}: default {DEFAULT_FORMULA} all {d['all']:.3f} val {d['val']:.3f} "
            f"(AP {d['val_ap']:.3f}); chosen {choice.formula} all {c['all']:.3f} val "
            f"{c['val']:.3f} (AP {c['val_ap']:.3f}); split-half chosen "
            f"{h['chosen_recall_mean']:.3f}±{h['chosen_recall_sd']:.3f} vs default "
            f"{h['default_recall_mean']:.3f}±{h['default_recall_sd']:.3f}"
            + (
                f"; stored {out['stored']['formula']} all {out['stored']['all']:.3f}"
                if "stored" in out
                else ""
            )
        )
    result["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
