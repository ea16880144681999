"""How good a SimCLR encoder can a CPU train in a given budget? (DESIGN S2; feeds S1, S3.)

Trains one :class:`models.SimCLREncoder` configuration on a survey with the real training loop
(``models.fit``, or ``backend.modelling.train.train_encoder`` itself with ``--via-train-encoder``),
embeds every object and measures the embeddings on the 7-class ``true_class`` labels of the
demo survey: a linear probe (the one of ``bench_models_eval.py``: standardised logistic
regression) trained on 10% and on 100% of the training rows, and a cosine kNN classifier
(k = 20, 100% of the training rows), all tested on the same stratified 20% held out as
``bench_models_eval.py --part s2``. The encoder itself never sees a label.

    LATENTSKY_HOME=/tmp/enc_home .venv/bin/python bench/bench_encoder_budget.py \\
        --name default_400 --steps 400
    ... --name pool2_300s --seconds 300 --backbone '{"input_pool": 2}' --augment '{"blur_fwhm_arcsec": [0, 0]}'
    ... --name prepare --via-train-encoder       # the exact prepare path (registers a version)
    ... --name prepare --evaluate-version v0001  # evaluate a registered encoder only

Budgets: ``--steps`` (an exact number of optimiser steps; the schedule anneals over them) or
``--seconds`` (wall clock, as prepare does), or both (whichever ends first). Timings on a shared
machine are noisy: each run records the load average before and after; compare quality at a
fixed number of steps and speed separately. Results are merged by name into
``bench/results/encoder_budget.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results" / "encoder_budget.json"


def load_avg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def knn_accuracy(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, k: int = 20
) -> float:
    """Cosine kNN (distance-weighted vote of the k nearest training rows), test accuracy."""
    from sklearn.neighbors import KNeighborsClassifier

    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    clf = KNeighborsClassifier(n_neighbors=k, weights="distance").fit(unit[train], labels[train])
    return float((clf.predict(unit[test]) == labels[test]).mean())


def evaluate_embeddings(
    features: np.ndarray, labels: np.ndarray, train_rows: np.ndarray, rows10: np.ndarray,
    test_rows: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    from bench_models_eval import probe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "probe_10pct": probe(features, labels, rows10, test_rows),
            "probe_100pct": probe(features, labels, train_rows, test_rows),
            "knn20_100pct": knn_accuracy(features, labels, train_rows, test_rows),
        }


def merge(name: str, record: dict[str, Any]) -> None:
    out = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    out.setdefault("benchmark", "encoder_budget")
    out["machine"] = {"cpu_count": os.cpu_count(), "machine": platform.machine()}
    out.setdefault("runs", {})[name] = record
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=float))


def summary(name: str, r: dict[str, Any]) -> str:
    t, e = r.get("training", {}), r["eval"]
    return (
        f"{name}: steps {t.get('steps')} in {t.get('seconds', 0):.0f} s "
        f"({t.get('seconds_per_step', 0):.2f} s/step), probe 10% "
        f"{e['probe_10pct']['accuracy']:.3f} / 100% {e['probe_100pct']['accuracy']:.3f}, "
        f"kNN {e['knn20_100pct']:.3f}, load {r['load_before']} -> {r['load_after']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="key of this run in the JSON")
    parser.add_argument("--survey", default="demo")
    parser.add_argument("--steps", type=int, default=0, help="optimiser steps (0: no limit)")
    parser.add_argument("--seconds", type=float, default=0.0, help="wall-clock budget (0: none)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.05, help="warm-up fraction")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--projection-hidden", type=int, default=256)
    parser.add_argument("--projection-dim", type=int, default=64)
    parser.add_argument("--backbone", default="{}", help="BackboneConfig overrides (JSON)")
    parser.add_argument(
        "--augment", default="{}", help="overrides of AugmentConfig.contrastive(scale) (JSON)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: leave)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-val", action="store_true", help="no validation split")
    parser.add_argument(
        "--via-train-encoder",
        action="store_true",
        help="train with backend.modelling.train.train_encoder and prepare's budget (registers "
        "a version in LATENTSKY_HOME's registry, which must be set and not the project's var/)",
    )
    parser.add_argument(
        "--evaluate-version", default="", help="only evaluate this registered encoder version"
    )
    parser.add_argument("--baselines", action="store_true", help="also a random-weights encoder")
    args = parser.parse_args()

    import torch

    from backend.modelling import metrics
    from backend.modelling.train import _split, catalog_labels
    from backend.survey import Survey
    from models import (
        ArrayDataset,
        AugmentConfig,
        BackboneConfig,
        SimCLREncoder,
        TrainConfig,
        embed,
        fit,
        seed_everything,
    )
    from models.normalize import fit_normalization

    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = load_avg()
    survey = Survey.open(args.survey)
    images = np.asarray(survey.images[:])
    labels, _classes = catalog_labels(survey, "true_class")
    train_rows, test_rows = metrics.stratified_split(labels, 0.2, seed=0)
    rows10 = metrics.subsample(train_rows, labels, 0.1, seed=0)
    record: dict[str, Any] = {
        "survey": survey.name,
        "n_objects": len(images),
        "threads": torch.get_num_threads(),
        "load_before": load0,
        "args": vars(args),
    }

    if args.via_train_encoder or args.evaluate_version:
        from backend.commands.prepare import BUDGETS
        from backend.modelling.common import load_model
        from backend.registry import ModelRegistry

        seconds = None
        if args.evaluate_version:
            version = ModelRegistry().get("encoder", args.evaluate_version)
        else:
            home = os.environ.get("LATENTSKY_HOME")
            if not home or Path(home).resolve() == (ROOT / "var").resolve():
                parser.error("--via-train-encoder needs LATENTSKY_HOME set to a scratch data root")
            from backend.modelling.train import train_encoder

            t0 = time.perf_counter()
            version = train_encoder(
                survey.name, epochs=50, max_seconds=BUDGETS["encoder"][0], progress_bar=False,
                activate=False,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
        result = version.meta["training"]["result"]
        seconds = seconds or result["seconds"]
        model = load_model(version)
        record["version"] = version.version
        record["config"] = model.config
        record["training"] = {
            "steps": result["steps"], "epochs": result["epochs"], "seconds": seconds,
            "seconds_per_step": seconds / max(result["steps"], 1), "stopped": result["stopped"],
            "val_loss": result["val_loss"], "train": version.meta["training"]["train"],
            "budget_seconds": BUDGETS["encoder"][0],
        }  # fmt: skip
    else:
        norm = fit_normalization(images, survey.bands, seed=args.seed)
        augment = {**AugmentConfig.contrastive(survey.meta.pixel_scale).to_dict()}
        augment.update(json.loads(args.augment))
        seed_everything(args.seed)
        model = SimCLREncoder(
            survey.bands,
            backbone=BackboneConfig(**json.loads(args.backbone)),
            projection_dim=args.projection_dim,
            projection_hidden=args.projection_hidden,
            temperature=args.temperature,
            normalization=norm,
            augment=AugmentConfig.from_dict(augment),
        )
        if args.baselines:
            feats = embed(model, images, device="cpu", progress_bar=False)
            record["random_weights"] = evaluate_embeddings(
                feats, labels, train_rows, rows10, test_rows
            )
            print("random weights", json.dumps(record["random_weights"]), flush=True)
        data = ArrayDataset(images)
        train, val = _split(data, 0.1, args.seed)
        if args.no_val:
            train, val = data, None
        per_epoch = len(train) // args.batch_size if len(train) > args.batch_size else 1
        epochs = math.ceil(args.steps / per_epoch) if args.steps else 1000
        cfg = TrainConfig(
            epochs=epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            warmup_fraction=args.warmup, max_seconds=args.seconds or None, seed=args.seed,
            device="cpu", progress_bar=False,
        )  # fmt: skip
        if not args.steps and not args.seconds:
            parser.error("give --steps and/or --seconds")
        t0 = time.perf_counter()
        result = fit(model, train, cfg, val=val)
        seconds = time.perf_counter() - t0
        record["config"] = model.config
        record["training"] = {
            "steps": result.steps, "epochs": result.epochs, "seconds": seconds,
            "seconds_per_step": seconds / max(result.steps, 1), "stopped": result.stopped,
            "val_loss": result.val_loss, "train_loss": result.train_loss,
            "best_epoch": result.best_epoch,
        }  # fmt: skip
    record["load_after_training"] = load_avg()
    t0 = time.perf_counter()
    feats = embed(model, images, device="cpu", progress_bar=False)
    record["embed_seconds"] = round(time.perf_counter() - t0, 2)
    record["eval"] = evaluate_embeddings(feats, labels, train_rows, rows10, test_rows)
    record["load_after"] = load_avg()
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    merge(args.name, record)
    print(summary(args.name, record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
