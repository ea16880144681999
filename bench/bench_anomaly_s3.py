"""S3: are injected anomalies found in the top 100, and does user feedback focus the list?

    .venv/bin/python bench/bench_anomaly_s3.py [--survey demo] [--liked strong_lens,ring_galaxy]
    .venv/bin/python bench/bench_anomaly_s3.py --survey gz1 --kind-column gz1_label \
        --rare merger,dont_know --no-feedback --out F   # a labelled survey's rare classes

Needs the survey (catalog column ``anomaly_type``: "" for normal objects), embeddings of its
active encoder (``python -m backend prepare``) and, when present, the active autoencoder's
residual predictions (``recon_error``, ``recon_peak``, ``recon_excess``); the cutouts' pixel
scores (``sharpness``, ``asymmetry``) are computed here, as ``score`` does. Measures:

- recall@100 and precision@100 of injected anomalies, overall and per kind, for each scorer
  (LOF included, not in the product's default set), the product's ranking ("combined":
  ``DEFAULT_SCORERS`` combined by ``DEFAULT_COMBINE``, used for the feedback rounds) and the
  mean and max of several scorer sets ("combinations"), against an
  isolation forest on raw pixels (4x4 average-pooled) and against random ranking;
- a simulated user who gives 5 to two anomaly kinds (``--liked``) and 0 to everything else,
  scoring the 10 best unscored objects of the current ranking in 5 rounds (50 labels), through
  the real feedback store (a temporary SQLite file); after each round, precision@100 and
  precision@R (R = number of liked objects, when below 100) of the liked kinds.

Target S3: recall@100 >= 2x the pixel isolation forest; >= 0.9 precision after 50 labels.
Writes ``bench/results/anomaly_s3.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.db import engine_for
from backend.feedback import latest_interest, record_interest
from backend.latent.anomaly import (
    DEFAULT_COMBINE,
    DEFAULT_SCORERS,
    PIXEL_SCORERS,
    SCORERS,
    AnomalyRanker,
    RerankParams,
)
from backend.latent.combination import CANDIDATES, evaluate, parse
from backend.latent.errors import LatentError
from backend.latent.image_scores import image_scores
from backend.latent.pipeline import autoencoder_scores
from backend.latent.scorers import isolation_forest, rank_normalise
from backend.latent.source import resolve_encoder_version
from backend.products import ProductError, open_embeddings
from backend.survey import Survey
from backend.survey.meta import SurveyError

RESULTS = Path(__file__).resolve().parent / "results" / "anomaly_s3.json"
TOP = 100
ROUNDS, PER_ROUND = 5, 10
METHODS = (("blend", "knn"), ("blend", "forest"), ("astronomaly", "knn"))
RESIDUAL_EXTRA = ("recon_peak", "recon_excess")
COMBINATIONS = (  # scorer sets compared under a mean and a max of their rank percentiles
    ("knn", "sharpness", "asymmetry"),
    ("iforest", "knn", "sharpness", "asymmetry"),
    ("recon_peak", "knn", "sharpness", "asymmetry"),
    ("recon_peak", "iforest", "knn", "sharpness", "asymmetry"),
    ("recon_peak", "iforest", "knn", "sharpness"),
    ("iforest", "knn", "sharpness"),
    ("knn", "sharpness"),
    ("knn", "asymmetry"),
    ("recon", "iforest", "knn"),
    ("recon", "knn"),
    ("recon_peak", "iforest", "knn"),
    ("recon_excess", "iforest", "knn"),
    ("recon", "recon_excess", "iforest", "knn"),
    ("recon_excess", "knn"),
    ("recon_peak", "knn"),
    ("recon", "recon_excess", "knn"),
)


# formulas of backend.latent.combination (the candidates a survey's labelled anomalies choose
# from, and a few more rules), measured on the injected anomalies
FORMULAS = (
    *CANDIDATES,
    "mean(knn,sharpness,asymmetry)",
    "mean(iforest,knn,sharpness,asymmetry)",
    "max(knn,sharpness,fisher(iforest,asymmetry))",
    "max(sharpness,mean(iforest,knn,asymmetry))",
)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def top_metrics(score: np.ndarray, kinds: np.ndarray, top: int = TOP) -> dict[str, Any]:
    """recall/precision@top of all injected anomalies and per kind (higher score = stranger)."""
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")[:top]
    picked = kinds[order]
    is_anom = kinds != ""
    out: dict[str, Any] = {
        "recall": round(float((picked != "").sum() / max(is_anom.sum(), 1)), 4),
        "precision": round(float((picked != "").mean()), 4),
        "per_kind": {},
    }
    for kind in sorted(set(kinds[is_anom])):
        hits = int((picked == kind).sum())
        out["per_kind"][kind] = {
            "n": int((kinds == kind).sum()),
            "recall": round(hits / int((kinds == kind).sum()), 4),
            "precision": round(hits / top, 4),
        }
    return out


def pixel_iforest(survey: Survey, seed: int) -> np.ndarray:
    """Isolation forest on 4x4 average-pooled pixels (the S3 baseline)."""
    c, h, w = survey.image_shape
    ph, pw = max(1, h // 4), max(1, w // 4)
    feats = np.empty((len(survey), c * 4 * 4), dtype=np.float32)
    for lo, images in survey.iter_batches(1024):
        crop = images[:, :, : ph * 4, : pw * 4]
        pooled = crop.reshape(len(images), c, 4, ph, 4, pw).mean(axis=(3, 5))
        feats[lo : lo + len(images)] = pooled.reshape(len(images), -1)
    return isolation_forest(feats, seed)


def simulate_user(
    ranker: AnomalyRanker,
    kinds: np.ndarray,
    liked: set[str],
    method: str,
    regressor: str,
    survey: str,
) -> list[dict[str, Any]]:
    """Five rounds of ten interest scores on the top unscored objects; metrics per round."""
    is_liked = np.isin(kinds, list(liked))
    r_top = int(min(TOP, is_liked.sum()))
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_for(f"sqlite:///{tmp}/s3.db")
        table = ranker.ranking()
        for round_no in range(ROUNDS + 1):
            order = table["index"].to_numpy()
            rounds.append(
                {
                    "labels": round_no * PER_ROUND,
                    "precision_at_100": round(float(is_liked[order[:TOP]].mean()), 4),
                    f"precision_at_{r_top}": round(float(is_liked[order[:r_top]].mean()), 4),
                    "liked_found_in_top_100": int(is_liked[order[:TOP]].sum()),
                }
            )
            if round_no == ROUNDS:
                break
            scored = set(latest_interest(survey, engine=engine)["object_id"])
            ids = table["object_id"].astype(str).to_numpy()
            fresh = [(i, oid) for i, oid in zip(order, ids, strict=True) if oid not in scored]
            for i, oid in fresh[:PER_ROUND]:
                score = 5 if is_liked[i] else 0
                record_interest(survey, oid, score, "s3-user", engine=engine)
            interest = latest_interest(survey, engine=engine)
            table = ranker.rerank(interest, RerankParams(method=method, regressor=regressor))
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", default="demo")
    parser.add_argument("--model", default=None, help="encoder version (default: active)")
    parser.add_argument("--liked", default=None, help="two anomaly kinds the user likes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--kind-column", default="anomaly_type", help="catalog column of anomaly kinds"
    )
    parser.add_argument(
        "--rare", default=None, help="values of --kind-column that are anomalies (default: any)"
    )
    parser.add_argument("--no-feedback", action="store_true", help="skip the feedback rounds")
    args = parser.parse_args()
    started = time.perf_counter()

    try:
        survey = Survey.open(args.survey)
        version = resolve_encoder_version(survey.name, args.model)
        embeddings = open_embeddings(survey.name, "encoder", version)
    except (SurveyError, LatentError, ProductError) as exc:
        fail(f"{exc} (S3 needs the demo survey and its models: `python -m backend prepare`)")
    column = args.kind_column
    if column not in survey.catalog.columns:
        fail(f"survey {survey.name} has no {column} column: S3 needs injected anomalies")
    kinds = survey.catalog[column].fillna("").astype(str).to_numpy()
    if args.rare:  # a labelled survey: the rare classes are its anomalies, the rest normal
        kinds = np.where(np.isin(kinds, args.rare.split(",")), kinds, "")
    present = sorted(set(kinds) - {""}, key=lambda k: -(kinds == k).sum())
    if len(present) < 2:
        fail(f"survey {survey.name} has fewer than two kinds of injected anomalies")
    liked = set(args.liked.split(",")) if args.liked else {"strong_lens", "ring_galaxy"}
    if not liked <= set(present):
        liked = set(present[:2])
    counts = ", ".join(f"{k} {(kinds == k).sum()}" for k in present)
    n_anom = int((kinds != "").sum())
    print(
        f"{survey.name}: {len(survey):,} objects, {n_anom} injected ({counts}); encoder {version}"
    )

    notes: list[str] = []
    residuals = autoencoder_scores(survey, notes, RESIDUAL_EXTRA)
    t0 = time.perf_counter()
    pixels, psf = image_scores(survey)
    pixel_s = time.perf_counter() - t0
    notes.append(f"pixel scores in {pixel_s:.1f} s: PSF sharpness {psf['q_psf']:.3f}")
    for note in notes:
        print(note)
    t0 = time.perf_counter()
    ids = survey.catalog["object_id"].to_numpy()
    ranker = AnomalyRanker.fit(  # what `python -m backend score` makes (the product's ranking)
        embeddings, residuals=residuals, scorers=DEFAULT_SCORERS, object_ids=ids,
        seed=args.seed, combine_with=DEFAULT_COMBINE, pixels=pixels,
    )  # fmt: skip
    scoring_s = time.perf_counter() - t0 + pixel_s
    every = AnomalyRanker.fit(  # every scorer, for the table of scorers and combinations
        embeddings, residuals=residuals, object_ids=ids, seed=args.seed, pixels=pixels,
        scorers=("recon", *RESIDUAL_EXTRA, "iforest", "knn", "lof", *PIXEL_SCORERS),
    ).scores  # fmt: skip
    scorers: dict[str, Any] = {
        name: top_metrics(every[name].to_numpy(), kinds) for name in SCORERS if name in every
    }
    scorers["combined"] = top_metrics(ranker.scores["anomaly"].to_numpy(), kinds)
    scorers["combined"]["scorers"] = ranker.scorers
    scorers["combined"]["combine"] = DEFAULT_COMBINE
    combinations = {}
    for names in COMBINATIONS:
        present_names = [n for n in names if n in every]
        if len(present_names) < len(names):
            continue
        norm = np.vstack([every[n].to_numpy() for n in present_names])
        for how, value in (("mean", np.nanmean(norm, axis=0)), ("max", np.nanmax(norm, axis=0))):
            key = f"{how}({'+'.join(present_names)})"
            combinations[key] = top_metrics(value, kinds)
            print(f"{key:>48}: recall@100 {combinations[key]['recall']:.3f}")
    norm_all = {name: every[name].to_numpy() for name in SCORERS if name in every}
    for text in FORMULAS:
        key = parse(text).text
        if key not in combinations and set(parse(text).scorers) <= set(norm_all):
            combinations[key] = top_metrics(evaluate(parse(text), norm_all), kinds)
            print(f"{key:>48}: recall@100 {combinations[key]['recall']:.3f}")
    scorers["pixel_iforest"] = top_metrics(rank_normalise(pixel_iforest(survey, args.seed)), kinds)
    rng = np.random.default_rng(args.seed)
    scorers["random"] = top_metrics(rng.random(len(survey)), kinds)
    frac = float((kinds != "").mean())
    scorers["random"]["expected_precision"] = round(frac, 4)
    scorers["random"]["expected_recall"] = round(TOP / len(survey), 4)
    for name, m in scorers.items():
        print(f"{name:>14}: recall@100 {m['recall']:.3f}  precision@100 {m['precision']:.3f}")
    base = scorers["pixel_iforest"]["recall"]
    ratio = scorers["combined"]["recall"] / base if base else float("inf")
    print(f"combined vs pixel isolation forest (recall@100): {ratio:.2f}x (target >= 2x)")

    feedback = {}
    for method, regressor in () if args.no_feedback else METHODS:
        rounds = simulate_user(ranker, kinds, liked, method, regressor, survey.name)
        feedback[f"{method}/{regressor}"] = rounds
        print(f"feedback {method}/{regressor} (liked: {', '.join(sorted(liked))}):")
        for r in rounds:
            print("   ", r)

    result = {
        "survey": survey.name,
        "n": len(survey),
        "encoder": version,
        "n_anomalies": int((kinds != "").sum()),
        "kinds": {k: int((kinds == k).sum()) for k in present},
        "notes": notes,
        "scoring_s": round(scoring_s, 1),
        "pixel_scores_s": round(pixel_s, 1),
        "psf": psf,
        "top": TOP,
        "scorers": scorers,
        "combinations": {
            k: {"recall": v["recall"], "precision": v["precision"]} for k, v in combinations.items()
        },
        "combined_vs_pixel_iforest_recall": round(ratio, 3),
        "liked": sorted(liked),
        "n_liked": int(np.isin(kinds, list(liked)).sum()),
        "feedback": feedback,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
