"""Learning on real galaxies: the Q1-Q3 targets on SDSS + Galaxy Zoo 1 (``../shared/data/sdss_gz1``).

Runs what a user runs, in a data root of its own (``--home``, default ``var-bench-gz1``):

1. ``ingest images ../shared/data/sdss_gz1/images --size 128 --resize crop`` (once);
2. ``prepare --survey gz1 --label-column gz1_label`` (encoder continued from the shipped general
   encoder, classifier, autoencoder, map, index, anomaly scores);
3. ``evaluate`` with cw and acw merged into "spiral" and merger + dont_know as the rare class;
4. the ``finetune`` job on the survey's labels (flips off: spiral winding is mirror-asymmetric),
   then ``evaluate`` again with the fine-tuned encoder beside the first;
5. (``--recipes-only``) fine-tune recipes side by side: labels + NT-Xent, labels only,
   labels + supervised contrastive, mirror-equivariant 6 classes;
6. spiral direction as its own task: a fine-tune on cw/acw labels only, without flips, with
   flips (for comparison), and mirror-equivariant (schema ``symmetries: {mirror: {spiral_cw:
   spiral_acw}}``); accuracy on that task's own stored validation split
   (``--direction-only`` runs just this step).

Prints the figures and writes ``bench/results/gz1.json`` (``--json`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sdss_gz1"
MERGE = "spiral_cw,spiral_acw=spiral"
RARE = "merger,dont_know"


def cli(*args: str) -> None:
    print("$ python -m backend", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "backend", *args], check=True, cwd=ROOT)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets name, per representation and per classifier."""
    reps = {}
    for rep in report["representations"]:
        reps[rep["name"]] = {
            "precision_at_10": rep.get("precision_at_10", {}).get("per_class"),
            "probe_balanced_accuracy": {
                k: v.get("balanced_accuracy") for k, v in rep.get("probe", {}).items()
            },
            "knn_balanced_accuracy": rep.get("knn", {}).get("balanced_accuracy"),
            "anomaly_recall_at_100": rep.get("anomaly", {}).get("recall_at_100"),
            "stored_anomaly_recall_at_100": (rep.get("anomaly", {}).get("stored") or {}).get(
                "recall_at_100"
            ),
        }
    clfs = {
        c["version"]: {k: c.get(k) for k in ("accuracy", "balanced_accuracy", "ece")}
        for c in report["classifiers"]
    }
    return {"representations": reps, "classifiers": clfs, "split": report["split"]}


DIRECTION_VARIANTS = {  # name: (flip, mirror pairs)
    "no flips": (False, ()),
    "flips": (True, ()),
    "mirror-equivariant": (False, (("spiral_cw", "spiral_acw"),)),
}


def direction_task(survey: str, steps: int, variant: str) -> dict[str, Any]:
    """Fine-tune on cw/acw labels only (own task and split); accuracy on its val part."""
    from backend.evaluation.metrics import balanced_accuracy
    from backend.modelling.finetune import finetune_encoder
    from backend.modelling.infer import embed_survey, predict_version
    from backend.modelling.train import train_classifier
    from backend.products import read_predictions
    from backend.registry import ModelRegistry
    from backend.survey import Survey
    from backend.validation import validation_split

    s = Survey.open(survey)
    names = s.catalog["gz1_label"].astype(str).to_numpy()
    classes = ["spiral_acw", "spiral_cw"]
    labels = np.array([classes.index(n) if n in classes else -1 for n in names], np.int64)
    task = "spiral_direction"
    split = validation_split(survey, task, s.catalog["object_id"].to_numpy(), labels)
    flip, pairs = DIRECTION_VARIANTS[variant]
    t0 = time.perf_counter()
    encoder = finetune_encoder(survey, labels, classes, split.train_rows, steps=steps, flip=flip,
                               task=task, progress_bar=True, mirror_pairs=pairs)  # fmt: skip
    embed_survey(survey, encoder.version, progress_bar=False)
    clf = train_classifier(survey, labels=labels, classes=classes, encoder_version=encoder.version,
                           activate=False, progress_bar=False, task=task,
                           mirror_pairs=pairs)  # fmt: skip
    predict_version(survey, "classifier", clf.version)
    table = read_predictions(survey, "classifier", clf.version)
    probs = table[[f"p_{c}" for c in classes]].to_numpy()[split.val_rows]
    y = labels[split.val_rows]
    ModelRegistry()  # versions stay registered, inactive
    return {
        "variant": variant, "flip": flip, "mirror_pairs": [list(p) for p in pairs],
        "steps": steps, "encoder": encoder.version, "classifier": clf.version,
        "n_train": len(split.train_rows), "n_val": len(split.val_rows),
        "accuracy": float(np.mean(probs.argmax(1) == y)),
        "balanced_accuracy": balanced_accuracy(y, probs.argmax(1)),
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip


RECIPE_VARIANTS = {  # name: (recipe, merge cw/acw into spiral)
    "labels+ssl": ("labels+ssl", True),
    "supervised": ("supervised", True),
    "supervised, mirror-equivariant 6 classes": ("supervised", False),
    "labels": ("labels", True),
    "labels+supcon": ("labels+supcon", True),
    "labels, mirror-equivariant 6 classes": ("labels", False),
}


def recipe_task(survey: str, steps: int, variant: str, encoder: str | None) -> dict[str, Any]:
    """Fine-tune the encoder with one recipe on the class task's stored training split; the
    evaluation figures of the result (merged spiral, rare = merger + dont_know)."""
    from backend.evaluation.runner import evaluate
    from backend.modelling.finetune import finetune_encoder
    from backend.modelling.infer import embed_survey
    from backend.survey import Survey
    from backend.validation import validation_split

    s = Survey.open(survey)
    names = s.catalog["gz1_label"].astype(str).to_numpy()
    six = sorted(set(names))
    split = validation_split(survey, "class", s.catalog["object_id"].to_numpy(),
                             np.array([six.index(n) for n in names]))  # fmt: skip
    recipe, merged = RECIPE_VARIANTS[variant]
    if merged:
        names = np.array(["spiral" if n.startswith("spiral") else n for n in names])
        pairs: tuple = ()
    else:
        pairs = (("spiral_cw", "spiral_acw"),)
    classes = sorted(set(names))
    labels = np.array([classes.index(n) for n in names], np.int64)
    t0 = time.perf_counter()
    version = finetune_encoder(survey, labels, classes, split.train_rows, encoder_version=encoder,
                               steps=steps or None, flip=merged, task=f"recipe {variant}",
                               mirror_pairs=pairs, recipe=recipe, progress_bar=True)  # fmt: skip
    seconds = round(time.perf_counter() - t0, 1)
    embed_survey(survey, version.version, progress_bar=False)
    report = evaluate(survey, "gz1_label", merge_specs=[MERGE], rare=RARE.split(","),
                      encoders=[version.version], baselines=(), progress=False)  # fmt: skip
    rep = summary(report)["representations"][f"encoder {version.version}"]
    return {"variant": variant, "recipe": recipe, "steps": steps, "encoder": version.version,
            "finetune_seconds": seconds, **rep}  # fmt: skip


def card_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The model card's lines: each encoder's headline figures on sdss_gz1."""
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "command": "bench/bench_gz1.py"}
    roles = {
        f"encoder {result.get('zero_shot_encoder')}": "general encoder as shipped (zero-shot)",
        f"encoder {result.get('active_before_finetune', {}).get('encoder')}": (
            "continued self-supervised on gz1 (prepare)"
        ),
        f"encoder {result.get('finetune', {}).get('encoder')}": "fine-tuned on gz1 labels",
    }
    for stage in ("prepared", "finetuned"):
        for name, rep in result.get(stage, {}).get("representations", {}).items():
            name = roles.get(name, name)
            p10 = rep["precision_at_10"] or {}
            out[f"{stage}: {name}"] = {
                "precision@10": {k: round(v, 3) for k, v in p10.items() if v is not None},
                "probe balanced accuracy": {
                    k: round(v, 3) for k, v in rep["probe_balanced_accuracy"].items()
                },
                "anomaly recall@100": rep["anomaly_recall_at_100"],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT / "var-bench-gz1")
    parser.add_argument("--survey", default="gz1")
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--direction-steps", type=int, default=300)
    parser.add_argument("--skip", default="", help="comma list of: prepare,finetune,direction")
    parser.add_argument(
        "--direction-only", nargs="*", metavar="VARIANT", choices=sorted(DIRECTION_VARIANTS),
        help="only the spiral-direction task (these variants, default all) on an already "
        "ingested survey; writes bench/results/gz1_direction.json",
    )  # fmt: skip
    parser.add_argument(
        "--recipes-only", nargs="*", metavar="VARIANT", choices=sorted(RECIPE_VARIANTS),
        help="only compare fine-tune recipes (these, default all) on an already prepared "
        "survey; writes bench/results/gz1_recipes.json",
    )  # fmt: skip
    parser.add_argument("--recipe-steps", type=int, default=800)  # 0: each recipe's default
    parser.add_argument("--recipe-encoder", help="encoder version to start from (default: active)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "gz1.json")
    parser.add_argument(
        "--card", type=Path, help="general encoder folder whose card gets the figures"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: nothing to measure")
    os.environ["LATENTSKY_HOME"] = str(args.home.resolve())
    skip = set(args.skip.split(","))
    from backend.survey import list_surveys

    if not any(m.name == args.survey for m in list_surveys()):
        cli("ingest", "images", str(DATA / "images"), "--survey", args.survey, "--catalog",
            str(DATA / "catalog.csv"), "--id-column", "objid", "--size", "128",
            "--resize", "crop")  # fmt: skip
    result: dict[str, Any] = {
        "benchmark": "gz1", "load_average_start": os.getloadavg()[0], "started": time.time(),
    }  # fmt: skip
    if args.direction_only is not None:
        variants = args.direction_only or list(DIRECTION_VARIANTS)
        result["benchmark"] = "gz1 spiral direction"
        result["direction"] = [direction_task(args.survey, args.direction_steps, v)
                               for v in variants]  # fmt: skip
        result["load_average_end"] = os.getloadavg()[0]
        out = args.json.with_name("gz1_direction.json")
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps(result, indent=2, default=str))
        return
    if args.recipes_only is not None:
        from backend.registry import ModelRegistry

        prepared = args.recipe_encoder or ModelRegistry().active_versions(args.survey).get(
            "encoder"
        )
        result["benchmark"] = "gz1 fine-tune recipes"
        result["from_encoder"] = prepared
        result["recipes"] = [
            recipe_task(args.survey, args.recipe_steps, v, prepared)
            for v in args.recipes_only or list(RECIPE_VARIANTS)
        ]
        result["load_average_end"] = os.getloadavg()[0]
        out = args.json.with_name("gz1_recipes.json")
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps(result, indent=2, default=str))
        return
    t0 = time.perf_counter()
    if "prepare" not in skip:
        cli("prepare", "--survey", args.survey, "--label-column", "gz1_label", "--targets", "")
    result["prepare_seconds"] = round(time.perf_counter() - t0, 1)

    from backend.evaluation.runner import evaluate
    from backend.modelling.train import train_encoder
    from backend.registry import ModelRegistry

    registry = ModelRegistry()
    shipped = [
        v.version for v in registry.list("encoder", args.survey)
        if v.meta.get("training", {}).get("budget", {}).get("steps") == 0
    ]  # fmt: skip
    if not shipped:
        shipped = [train_encoder(args.survey, init="general", steps=0, activate=False).version]
    result["zero_shot_encoder"] = shipped[0]
    report = evaluate(
        args.survey, "gz1_label", merge_specs=[MERGE], rare=RARE.split(","), progress=False
    )
    result["prepared"] = summary(report)
    result["active_before_finetune"] = ModelRegistry().active_versions(args.survey)
    if "finetune" not in skip:
        from backend.active.loop import finetune_and_maybe_activate

        t1 = time.perf_counter()
        out = finetune_and_maybe_activate(
            args.survey, {"steps": args.finetune_steps, "flip": False}
        )
        result["finetune"] = {**out, "seconds": round(time.perf_counter() - t1, 1)}
        report = evaluate(args.survey, "gz1_label", merge_specs=[MERGE], rare=RARE.split(","),
                          progress=False)  # fmt: skip
        result["finetuned"] = summary(report)
    if "direction" not in skip:
        result["direction"] = [
            direction_task(args.survey, args.direction_steps, v) for v in DIRECTION_VARIANTS
        ]
    result["load_average_end"] = os.getloadavg()[0]
    if args.card:
        from backend.pretrain.card import add_metrics

        add_metrics(args.card, "sdss_gz1 (bench/bench_gz1.py)", card_metrics(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
