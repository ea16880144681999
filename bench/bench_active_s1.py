"""S1: active learning on the demo survey: BALD + diversity, margin + diversity, entropy, random.

Simulated oracle: answers are the demo catalog's ``true_class`` (7 classes). Each round retrains
the MC-dropout head (``models.EmbeddingClassifier``, 300 full-batch AdamW steps) on the labels so
far, predicts every object with 20 consistent MC-dropout samples and asks
:func:`backend.active.next_batch` for the next batch of 50 (active strategies start with
:func:`backend.active.cold_start`, random starts at random). Accuracy on a fixed held-out test
set of 2,000 objects that are never offered. S1 figure: labels each strategy needs to reach
random's final accuracy (target: >= 50% fewer).

Two feature sets (``--features``):

* ``encoder``: the demo encoder's embeddings (read-only), i.e. what the app ranks with;
* ``catalog``: the catalog's standardised true structural parameters and colours, a control in
  which the classes are nearly separable (shows what the same acquisition code does when the
  features carry the class information);
* ``finetune``: backbone fine-tuning in the loop. After each batch is labelled, the encoder is
  fine-tuned on every label so far with the product's own
  :func:`backend.modelling.finetune.finetune_encoder` (the recipe it picks for that many labels:
  the NT-Xent-regularised one below 1,000, ``supervised`` from 1,000), continuing the previous
  round's encoder as the product's loop continues the active one, for ``--finetune-steps``
  optimiser steps per round; the whole survey is re-embedded, the head retrained on the new
  embeddings, and the next batch acquired from them. Each (seed, strategy) runs in its own
  process and data root (``--jobs``), made under ``--work`` from a copy of ``--home``'s survey
  and encoder (``--home`` is only read). ``--active-max-labels`` stops the active strategies
  early (S1 asks whether they reach random's 1,000-label accuracy with at most 500).
  ``--seed-list`` picks seeds; ``--reference`` takes random's curves of the seeds an earlier
  result holds instead of re-running them (the result records which curves were run).

The head is trained without class weights by default (``--class-weights balanced`` weights
classes by inverse labelled frequency, as ``train_classifier`` does; it cost every strategy
accuracy on this test set, see docs/results.md).

    .venv/bin/python bench/bench_active_s1.py [--home var] [--seeds 3] [--max-labels 1000]
    .venv/bin/python bench/bench_active_s1.py --features finetune --strategies \
        random,margin+diversity --finetune-steps 20 --active-max-labels 500 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from backend.active import cold_start, next_batch

ROOT = Path(__file__).resolve().parents[1]
TRAIN_STEPS = 300
MC_SAMPLES = 20
STRATEGIES = {
    "bald+diversity": ("bald", "kmeans++"),
    "margin+diversity": ("margin", "kmeans++"),
    "entropy": ("entropy", "none"),
    "random": ("random", "none"),
}
CATALOG_FEATURES = [
    "redshift", "abs_mag_r", "sersic_n", "bulge_sersic_n", "half_light_radius", "ellipticity",
    "bulge_fraction", "mag_g", "mag_r", "mag_i", "mag_z",
]  # fmt: skip


def train_head(x, y, rows, n_classes: int, seed: int, class_weights: str = "none"):
    """The MC-dropout head (models.EmbeddingClassifier), full-batch AdamW (fast on <= 1k rows)."""
    import torch

    from models import EmbeddingClassifier

    torch.manual_seed(seed)
    weights = None
    if class_weights == "balanced":
        counts = np.bincount(y[rows], minlength=n_classes)
        weights = (counts.sum() / np.maximum(counts, 1) / n_classes).tolist()
    model = EmbeddingClassifier(x.shape[1], n_classes, dropout=0.3, class_weights=weights)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    batch = {"inputs": torch.from_numpy(x[rows]), "targets": torch.from_numpy(y[rows])}
    model.train()
    for _ in range(TRAIN_STEPS):
        opt.zero_grad()
        model.training_loss(batch).backward()
        opt.step()
    return model.eval()


def predictions(model, x: np.ndarray) -> pd.DataFrame:
    from models import predict_classes

    out = predict_classes(model, x, mc_samples=MC_SAMPLES, device="cpu", progress_bar=False)
    table = pd.DataFrame({f"p_{i}": out["probs"][:, i] for i in range(out["probs"].shape[1])})
    table["entropy"], table["bald"] = out["entropy"], out["bald"]
    return table


def run_one(x, y, test, name, seed, batch, max_labels, n_classes, class_weights) -> list[dict]:
    strategy, diversity = STRATEGIES[name]
    labelled = np.zeros(len(x), bool)
    labelled[test] = True  # never offered to the oracle
    pool_mask = labelled.copy()
    preds, curve = None, []
    rng = np.random.default_rng(seed)
    while (labelled & ~pool_mask).sum() < max_labels:
        round_seed = int(rng.integers(2**31))
        if preds is None and strategy != "random":  # cold start: one per k-means cluster
            picked = cold_start(x, batch, exclude=pool_mask, seed=round_seed)
        else:
            picked = next_batch(
                x, preds, labelled, strategy, batch, round_seed, diversity=diversity
            )
        if labelled[picked].any():
            raise RuntimeError(f"{name} offered an already labelled or test object")
        labelled[picked] = True
        rows = np.flatnonzero(labelled & ~pool_mask)
        model = train_head(x, y, rows, n_classes, seed, class_weights)
        preds = predictions(model, x)
        probs = preds[[f"p_{i}" for i in range(n_classes)]].to_numpy()
        acc = float((probs[test].argmax(1) == y[test]).mean())
        curve.append({"labels": len(rows), "accuracy": acc})
    return curve


def labels_to_reach(curve: list[dict], target: float) -> int | None:
    return next((p["labels"] for p in curve if p["accuracy"] >= target), None)


def load_features(home: Path, features: str) -> np.ndarray:
    if features == "encoder":
        x = np.load(home / "products/demo/encoder-v0001/embeddings.npy", mmap_mode="r")
        return np.ascontiguousarray(x, dtype=np.float32)
    if features == "catalog":
        cat = pd.read_parquet(home / "surveys/demo/catalog.parquet", columns=CATALOG_FEATURES)
        f = cat.to_numpy(np.float64)
        mags = f[:, 7:11]
        f = np.column_stack([f, mags[:, :-1] - mags[:, 1:]])  # + g-r, r-i, i-z colours
        f = np.nan_to_num((f - np.nanmean(f, 0)) / np.nanstd(f, 0))  # missing -> the mean
        return f.astype(np.float32)
    raise ValueError(f"unknown features {features!r}")


def run_features(args, features: str, y: np.ndarray, classes: list[str]) -> dict:
    x = load_features(Path(args.home), features)
    test = np.sort(np.random.default_rng(12345).choice(len(x), args.test, replace=False))
    started = time.perf_counter()
    curves: dict[str, list[list[dict]]] = {name: [] for name in STRATEGIES}
    for seed in range(args.seeds):
        for name in STRATEGIES:
            t0 = time.perf_counter()
            curves[name].append(run_one(
                x, y, test, name, seed, args.batch, args.max_labels, len(classes),
                args.class_weights,
            ))  # fmt: skip
            print(f"{features} seed {seed} {name:17s} final acc "
                  f"{curves[name][-1][-1]['accuracy']:.3f} ({time.perf_counter() - t0:.0f} s, "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    labels = [p["labels"] for p in curves["random"][0]]
    acc = {n: np.array([[p["accuracy"] for p in c] for c in cs]) for n, cs in curves.items()}
    mean = {n: a.mean(0) for n, a in acc.items()}
    target = float(mean["random"][-1])
    summary = {}
    for name in STRATEGIES:
        mean_curve = [
            {"labels": n, "accuracy": float(a)} for n, a in zip(labels, mean[name], strict=True)
        ]
        needed = labels_to_reach(mean_curve, target)
        per_seed = [labels_to_reach(c, float(curves["random"][s][-1]["accuracy"]))
                    for s, c in enumerate(curves[name])]  # fmt: skip
        summary[name] = {
            "accuracy_at": {
                str(n): round(float(mean[name][labels.index(n)]), 4)
                for n in (100, 250, 500, 1000)
                if n in labels
            },
            "final_accuracy": float(mean[name][-1]),
            "final_accuracy_std": float(acc[name][:, -1].std()),
            "labels_to_reach_random_final": needed,
            "label_saving_vs_random": None if needed is None else 1 - needed / labels[-1],
            "labels_to_reach_per_seed": per_seed,
        }
    return {
        "features": features, "dim": int(x.shape[1]), "random_final_accuracy": target,
        "labels": labels,
        "mean_accuracy": {n: m.tolist() for n, m in mean.items()},
        "min_accuracy": {n: a.min(0).tolist() for n, a in acc.items()},
        "max_accuracy": {n: a.max(0).tolist() for n, a in acc.items()},
        "std_accuracy": {n: a.std(0).tolist() for n, a in acc.items()},
        "per_seed_accuracy": {n: a.tolist() for n, a in acc.items()},
        "summary": summary, "seconds": time.perf_counter() - started,
    }  # fmt: skip


def seed_home(work: Path, source: Path, encoder: str, seed: int, strategy: str) -> Path:
    """A data root for one (seed, strategy) run's fine-tunes: the survey copy under ``work``
    (linked) and the starting encoder copied from ``source`` (which is never written)."""
    home = work / f"seed{seed}-{strategy}"
    (home / "models/encoder").mkdir(parents=True, exist_ok=True)
    if not (home / "surveys").exists():
        (home / "surveys").symlink_to(work / "surveys", target_is_directory=True)
    target = home / "models/encoder" / encoder
    if not target.exists():
        shutil.copytree(source / "models/encoder" / encoder, target)
    return home


def embed_version(version: str, pixels: np.ndarray, bands: list[str]) -> np.ndarray:
    """Embeddings of every cutout by a registered encoder version (of the current data root)."""
    from backend.modelling.common import load_model
    from backend.registry import ModelRegistry
    from models import embed

    model = load_model(ModelRegistry().get("encoder", version))
    x = embed(model, pixels, bands=bands, batch_size=512, device="cpu", progress_bar=False)
    return np.ascontiguousarray(x, dtype=np.float32)


def run_one_finetune(
    pixels, bands, y, test, name, seed, base: str, base_x, classes, args, survey: str = "demo"
) -> list[dict]:
    """One strategy's loop with the backbone fine-tuned on the labels after every batch; each
    round continues the previous round's encoder (``base`` first, embeddings ``base_x``)."""
    from backend.modelling.finetune import finetune_encoder

    strategy, diversity = STRATEGIES[name]
    stop = args.max_labels if name == "random" else min(args.max_labels, args.active_max_labels)
    labelled = np.zeros(len(y), bool)
    labelled[test] = True  # never offered to the oracle
    pool_mask = labelled.copy()
    x, version, preds, curve = base_x, base, None, []
    rng = np.random.default_rng(seed)
    while (labelled & ~pool_mask).sum() < stop:
        t0 = time.perf_counter()
        round_seed = int(rng.integers(2**31))
        if preds is None and strategy != "random":
            picked = cold_start(x, args.batch, exclude=pool_mask, seed=round_seed)
        else:
            picked = next_batch(
                x, preds, labelled, strategy, args.batch, round_seed, diversity=diversity
            )
        if labelled[picked].any():
            raise RuntimeError(f"{name} offered an already labelled or test object")
        labelled[picked] = True
        rows = np.flatnonzero(labelled & ~pool_mask)
        known = np.full(len(y), -1, np.int64)
        known[rows] = y[rows]  # the oracle's answers; test objects stay unlabelled
        tuned = finetune_encoder(
            survey, known, classes, rows, encoder_version=version,
            steps=args.finetune_steps, seed=round_seed % 2**31, progress_bar=False,
        )  # fmt: skip
        training = tuned.meta["training"]
        version = tuned.version
        x = embed_version(version, pixels, bands)
        model = train_head(x, y, rows, len(classes), seed, args.class_weights)
        preds = predictions(model, x)
        probs = preds[[f"p_{i}" for i in range(len(classes))]].to_numpy()
        acc = float((probs[test].argmax(1) == y[test]).mean())
        curve.append({
            "labels": len(rows), "accuracy": acc, "encoder": version,
            "recipe": training["recipe"], "steps": training["budget"]["steps"],
            "head": training.get("head"),
            "seconds": round(time.perf_counter() - t0, 1),
        })  # fmt: skip
        print(f"finetune seed {seed} {name} {len(rows)} labels acc {acc:.3f} "
              f"({training['recipe']}, {curve[-1]['seconds']:.0f} s, "
              f"load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    return curve


def finetune_run(job: dict) -> list[dict]:
    """A process's work: one strategy of one seed, in that (seed, strategy)'s own data root."""
    import torch

    from backend.survey import Survey

    torch.set_num_threads(1)
    args = argparse.Namespace(**job["args"])
    os.environ["LATENTSKY_HOME"] = str(seed_home(
        Path(job["work"]), Path(args.home), job["encoder"], job["seed"], job["strategy"]
    ))  # fmt: skip
    survey = Survey.open("demo")
    pixels = np.asarray(survey.images[:])
    base_x = embed_version(job["encoder"], pixels, list(survey.bands))
    return run_one_finetune(
        pixels, list(survey.bands), job["y"], job["test"], job["strategy"], job["seed"],
        job["encoder"], base_x, job["classes"], args,
    )  # fmt: skip


def seed_list(args) -> list[int]:
    """The seeds to run: ``--seed-list`` (comma-separated) or ``range(--seeds)``."""
    if getattr(args, "seed_list", None):
        return sorted({int(v) for v in str(args.seed_list).split(",") if v.strip()})
    return list(range(args.seeds))


def reference_random(path: Path) -> dict[int, list[dict]]:
    """Random's per-seed curves (rounds) from an earlier ``--features finetune`` result."""
    try:
        run = json.loads(path.read_text())
        ft = run["features"]["finetune"]
        rounds = ft["strategies"]["random"]["rounds"]
        seeds = run.get("seed_list") or list(range(int(run["seeds"])))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SystemExit(f"{path}: not a fine-tune S1 result with random's rounds ({exc})") from exc
    if len(seeds) != len(rounds):
        raise SystemExit(f"{path}: {len(rounds)} random curves for seeds {seeds}")
    return dict(zip(seeds, rounds, strict=True))


def plan_runs(strategies: list[str], seeds: list[int], reference: dict[int, list[dict]]):
    """(strategy, seed) pairs to run, random first (its loop is the longest); random's curve of
    a seed that ``reference`` holds is taken from it, not re-run."""
    runs = [(n, s) for n in strategies for s in seeds if not (n == "random" and s in reference)]
    missing = [s for s in seeds if "random" not in strategies and s not in reference]
    if missing:
        raise SystemExit(
            f"random (the target's reference) is neither run nor in --reference for seeds {missing}"
        )
    return sorted(runs, key=lambda r: r[0] != "random")


def active_encoder(home: Path) -> str:
    """The demo survey's active encoder version in ``home``."""
    path = home / "models/active/demo.json"
    try:
        return json.loads(path.read_text())["encoder"]
    except (OSError, KeyError, ValueError) as exc:
        raise SystemExit(f"{path}: no active demo encoder to start from ({exc})") from exc


def run_finetune(args, y: np.ndarray, classes: list[str]) -> dict:
    """S1 with backbone fine-tuning in the loop; one process per (seed, strategy) run."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    home = Path(args.home)
    encoder = args.encoder or active_encoder(home)
    strategies = args.strategies.split(",")
    seeds = seed_list(args)
    reference = reference_random(Path(args.reference)) if args.reference else {}
    runs = plan_runs(strategies, seeds, reference)
    if "random" not in strategies:
        strategies = ["random", *strategies]
    test = np.sort(np.random.default_rng(12345).choice(len(y), args.test, replace=False))
    work = Path(args.work or tempfile.mkdtemp(prefix="latentsky-s1-finetune-"))
    started = time.perf_counter()
    if runs and not (work / "surveys/demo").exists():
        shutil.copytree(home / "surveys/demo", work / "surveys/demo")
    jobs = [
        {"args": vars(args), "work": str(work), "encoder": encoder, "seed": seed, "y": y,
         "test": test, "classes": classes, "strategy": name}
        for name, seed in runs
    ]  # fmt: skip
    with ProcessPoolExecutor(max(args.jobs, 1), mp_context=mp.get_context("spawn")) as pool:
        done = dict(zip(runs, pool.map(finetune_run, jobs), strict=True))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    curves = {n: [done.get((n, s)) or reference[s] for s in seeds] for n in strategies}
    sources = {n: ["run" if (n, s) in done else "reference" for s in seeds] for n in strategies}
    target_seed = [c[-1]["accuracy"] for c in curves["random"]]
    target = float(np.mean(target_seed))
    out: dict = {"features": "finetune", "start_encoder": encoder, "strategies": {},
                 "seeds": seeds, "seed_sources": sources,
                 "reference": args.reference,
                 "random_final_accuracy": target, "random_final_accuracy_per_seed": target_seed}  # fmt: skip
    for name in strategies:
        labels = [p["labels"] for p in curves[name][0]]
        acc = np.array([[p["accuracy"] for p in c] for c in curves[name]])
        mean = [
            {"labels": n, "accuracy": float(a)} for n, a in zip(labels, acc.mean(0), strict=True)
        ]
        out["strategies"][name] = {
            "labels": labels,
            "mean_accuracy": acc.mean(0).tolist(), "min_accuracy": acc.min(0).tolist(),
            "max_accuracy": acc.max(0).tolist(), "per_seed_accuracy": acc.tolist(),
            "labels_to_reach_random_final": labels_to_reach(mean, target),
            "labels_to_reach_per_seed": [labels_to_reach(c, t)
                                         for c, t in zip(curves[name], target_seed, strict=True)],
            "rounds": curves[name],
        }  # fmt: skip
    out["seconds"] = time.perf_counter() - started
    return out


def plot_finetune(run: dict, path: str, frozen: Path | None) -> None:
    """Accuracy vs labels with fine-tuning in the loop, random's final level, and (dashed)
    the frozen-embedding curves of ``frozen`` (an earlier encoder-features result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.4))
    colours = {}
    for name, s in run["strategies"].items():
        line = ax.plot(s["labels"], s["mean_accuracy"], lw=2, marker=".",
                       label=f"{name}, fine-tuned backbone")[0]  # fmt: skip
        colours[name] = line.get_color()
        ax.fill_between(s["labels"], s["min_accuracy"], s["max_accuracy"],
                        color=colours[name], alpha=0.15, lw=0)  # fmt: skip
    if frozen is not None and frozen.exists():
        old = json.loads(frozen.read_text())["features"].get("encoder")
        for name in run["strategies"]:
            if old and name in old["mean_accuracy"]:
                ax.plot(old["labels"], old["mean_accuracy"][name], ls="--", lw=1,
                        color=colours[name], label=f"{name}, frozen embeddings")  # fmt: skip
    ax.axhline(run["random_final_accuracy"], color="grey", ls=":", lw=1,
               label="random (fine-tuned) at max labels")  # fmt: skip
    ax.axvline(500, color="grey", lw=0.5)
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (7 classes)")
    n = len(next(iter(run["strategies"].values()))["per_seed_accuracy"])
    ax.set_title(f"S1 with backbone fine-tuning in the loop (mean, min–max of {n} seeds)",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def finetune_main(args, y: np.ndarray, classes: list[str], load_before: list[float]) -> None:
    """Run, write and print the ``finetune`` features' result."""
    from backend.atomic import atomic_write_json

    run = run_finetune(args, y, classes)
    result = {
        "target": "S1: acquisition with backbone fine-tuning reaches random's accuracy at "
                  "1,000 labels with at most 500 labels",
        "survey": "demo", "classes": classes, "test_size": args.test, "batch": args.batch,
        "seeds": len(run["seeds"]), "seed_list": run["seeds"], "max_labels": args.max_labels,
        "active_max_labels": args.active_max_labels,
        "finetune": {"function": "backend.modelling.finetune.finetune_encoder",
                     "recipe": "the product's default for the number of labels",
                     "steps_per_round": args.finetune_steps,
                     "continues": "the previous round's encoder"},
        "head": {"model": "EmbeddingClassifier hidden 256 dropout 0.3", "steps": TRAIN_STEPS,
                 "optimizer": "AdamW lr 1e-3 wd 1e-2 full batch",
                 "class_weights": args.class_weights, "mc_samples": MC_SAMPLES},
        "torch_threads_per_process": 1, "processes": args.jobs,
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "features": {"finetune": run},
    }  # fmt: skip
    out = Path(args.out or ROOT / "bench/results/active_s1_finetune.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    plot_finetune(run, args.plot or str(ROOT / "docs/img/active_s1_finetune.png"),
                  Path(args.frozen) if args.frozen else None)  # fmt: skip
    print(f"\nfinetune ({run['seconds']:.0f} s), random final {run['random_final_accuracy']:.3f} "
          f"per seed {run['random_final_accuracy_per_seed']}")  # fmt: skip
    for name, s in run["strategies"].items():
        print(f"  {name:17s} mean acc {' '.join(f'{a:.3f}' for a in s['mean_accuracy'])}; "
              f"labels to reach random's final: {s['labels_to_reach_random_final']} "
              f"per seed {s['labels_to_reach_per_seed']}")  # fmt: skip
    print(f"load average before {load_before}, after {result['load_average_after']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default=str(ROOT / "var"))
    ap.add_argument("--features", default="encoder,catalog",
                    help="encoder and/or catalog, or finetune (alone)")  # fmt: skip
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--max-labels", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--class-weights", choices=("none", "balanced"), default="none")
    ap.add_argument("--out", default=None, help="default bench/results/active_s1[_finetune].json")
    ap.add_argument("--plot", default=None, help="default docs/img/active_s1[_finetune].png")
    ft = ap.add_argument_group("finetune features")
    ft.add_argument("--strategies", default=",".join(STRATEGIES), help="random and others")
    ft.add_argument("--finetune-steps", type=int, default=20, help="optimiser steps per round")
    ft.add_argument("--active-max-labels", type=int, default=1000,
                    help="labels at which the active strategies stop")  # fmt: skip
    ft.add_argument("--encoder", default=None, help="start encoder (default: --home's active)")
    ft.add_argument("--seed-list", default=None, help="comma-separated seeds (default: --seeds)")
    ft.add_argument("--reference", default=None,
                    help="earlier finetune result: random's curves of its seeds are taken from "
                         "it, not re-run")  # fmt: skip
    ft.add_argument("--jobs", type=int, default=1, help="(seed, strategy) runs in parallel")
    ft.add_argument("--work", default=None, help="scratch data root (default: a temporary one)")
    ft.add_argument("--frozen", default=str(ROOT / "bench/results/active_s1_general.json"),
                    help="frozen-embedding result drawn dashed for comparison")  # fmt: skip
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # 2 shared cores: one thread is faster
    home = Path(args.home)
    cat = pd.read_parquet(home / "surveys/demo/catalog.parquet", columns=["true_class"])
    classes = sorted(cat["true_class"].unique())
    y = cat["true_class"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    load_before = [round(v, 2) for v in os.getloadavg()]
    if args.features == "finetune":
        finetune_main(args, y, classes, load_before)
        return
    args.out = args.out or str(ROOT / "bench/results/active_s1.json")
    args.plot = args.plot or str(ROOT / "docs/img/active_s1.png")
    runs = {f: run_features(args, f, y, classes) for f in args.features.split(",")}
    result = {
        "target": "S1: >= 50% fewer labels than random for the same final accuracy",
        "survey": "demo", "classes": classes, "test_size": args.test, "batch": args.batch,
        "seeds": args.seeds, "max_labels": args.max_labels,
        "head": {"model": "EmbeddingClassifier hidden 256 dropout 0.3", "steps": TRAIN_STEPS,
                 "optimizer": "AdamW lr 1e-3 wd 1e-2 full batch",
                 "class_weights": args.class_weights, "mc_samples": MC_SAMPLES},
        "strategies": {n: {"strategy": s, "diversity": d} for n, (s, d) in STRATEGIES.items()},
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "features": runs,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    plot(runs, args.plot, args.seeds)
    for f, run in runs.items():
        print(f"\n{f} features ({run['seconds']:.0f} s), random final {run['random_final_accuracy']:.3f}")  # fmt: skip
        for name, s in run["summary"].items():
            print(f"  {name:17s} acc@100/250/500/1000 "
                  f"{' '.join(f'{v:.3f}' for v in s['accuracy_at'].values())} "
                  f"(± {s['final_accuracy_std']:.3f})  labels to reach random's final: "
                  f"{s['labels_to_reach_random_final'] or 'not reached'} "
                  f"per seed {s['labels_to_reach_per_seed']}")  # fmt: skip
    print(f"load average before {load_before}, after {result['load_average_after']}")


def plot(runs: dict, path: str, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"encoder": "demo encoder embeddings", "catalog": "control: true catalog parameters"}
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.2), squeeze=False)
    for ax, (features, run) in zip(axes[0], runs.items(), strict=True):
        labels = run["labels"]
        for name in run["mean_accuracy"]:
            mean = np.asarray(run["mean_accuracy"][name])
            line = ax.plot(labels, mean, label=name, lw=2 if name == "random" else 1.5)[0]
            ax.fill_between(labels, run["min_accuracy"][name], run["max_accuracy"][name],
                            color=line.get_color(), alpha=0.15, lw=0)  # fmt: skip
        ax.axhline(run["random_final_accuracy"], color="grey", ls=":", lw=1,
                   label="random @ max labels")  # fmt: skip
        lo = min(min(run["min_accuracy"][n]) for n in run["min_accuracy"])
        ax.set_ylim(lo - 0.01, None)
        ax.set_xlabel("labels")
        ax.set_ylabel("test accuracy (7 classes)")
        ax.set_title(f"{titles.get(features, features)} (mean, min–max of {seeds} seeds)",
                     fontsize=10)  # fmt: skip
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
