"""S1: active learning on the demo survey: BALD + diversity, margin + diversity, entropy, random.

Simulated oracle: answers are the demo catalog's ``true_class``. Features: the demo encoder's
embeddings (read-only). Each round retrains the MC-dropout head (``models.EmbeddingClassifier``
+ ``models.fit``) on the labels so far, predicts the pool with 20 MC samples and asks
:func:`backend.active.next_batch` for the next batch. Accuracy on a fixed held-out test set.
S1 figure: labels BALD needs to reach random's final accuracy (target: >= 50% fewer).

    .venv/bin/python bench/bench_active_s1.py [--home var] [--seeds 3] [--max-labels 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from backend.active import cold_start, next_batch

ROOT = Path(__file__).resolve().parents[1]
TRAIN_STEPS = 300
STRATEGIES = {
    "bald+diversity": ("bald", "kmeans++"),
    "margin+diversity": ("margin", "kmeans++"),
    "entropy": ("entropy", "none"),
    "random": ("random", "none"),
}


def train_head(x: np.ndarray, y: np.ndarray, rows: np.ndarray, n_classes: int, seed: int):
    """The MC-dropout head (models.EmbeddingClassifier), full-batch AdamW (fast on <= 1k rows)."""
    import torch

    from models import EmbeddingClassifier

    torch.manual_seed(seed)
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

    out = predict_classes(model, x, mc_samples=20, device="cpu", progress_bar=False)
    table = pd.DataFrame({f"p_{i}": out["probs"][:, i] for i in range(out["probs"].shape[1])})
    table["entropy"], table["bald"] = out["entropy"], out["bald"]
    return table


def run_one(x, y, test, name, seed, batch, max_labels, n_classes) -> list[dict]:
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
        labelled[picked] = True
        rows = np.flatnonzero(labelled & ~pool_mask)
        model = train_head(x, y, rows, n_classes, seed)
        preds = predictions(model, x)
        probs = preds[[f"p_{i}" for i in range(n_classes)]].to_numpy()
        acc = float((probs[test].argmax(1) == y[test]).mean())
        curve.append({"labels": len(rows), "accuracy": acc})
    return curve


def labels_to_reach(curve: list[dict], target: float) -> int | None:
    return next((p["labels"] for p in curve if p["accuracy"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default=str(ROOT / "var"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--max-labels", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "bench/results/active_s1.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs/img/eval_active_learning.png"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # 2 shared cores: one thread is faster
    home = Path(args.home)
    x = np.load(home / "products/demo/encoder-v0001/embeddings.npy", mmap_mode="r")
    x = np.ascontiguousarray(x, dtype=np.float32)
    cat = pd.read_parquet(home / "surveys/demo/catalog.parquet", columns=["true_class"])
    classes = sorted(cat["true_class"].unique())
    y = cat["true_class"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    test = np.sort(np.random.default_rng(12345).choice(len(x), args.test, replace=False))
    started = time.perf_counter()
    curves: dict[str, list[list[dict]]] = {name: [] for name in STRATEGIES}
    for seed in range(args.seeds):
        for name in STRATEGIES:
            t0 = time.perf_counter()
            curves[name].append(
                run_one(x, y, test, name, seed, args.batch, args.max_labels, len(classes))
            )
            print(f"seed {seed} {name:15s} final acc {curves[name][-1][-1]['accuracy']:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    labels = [p["labels"] for p in curves["random"][0]]
    mean = {n: np.mean([[p["accuracy"] for p in c] for c in cs], 0) for n, cs in curves.items()}
    std = {n: np.std([[p["accuracy"] for p in c] for c in cs], 0) for n, cs in curves.items()}
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
            "final_accuracy": float(mean[name][-1]),
            "final_accuracy_std": float(std[name][-1]),
            "labels_to_reach_random_final": needed,
            "label_saving_vs_random": None if needed is None else 1 - needed / labels[-1],
            "labels_to_reach_per_seed": per_seed,
        }
    result = {
        "target": "S1: >= 50% fewer labels than random for the same final accuracy",
        "survey": "demo", "features": "encoder-v0001 embeddings", "classes": classes,
        "test_size": args.test, "batch": args.batch, "seeds": args.seeds,
        "random_final_accuracy": target, "labels": labels,
        "mean_accuracy": {n: m.tolist() for n, m in mean.items()},
        "std_accuracy": {n: s.tolist() for n, s in std.items()},
        "summary": summary, "seconds": time.perf_counter() - started,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    plot(labels, mean, std, target, args.plot)
    print(json.dumps(summary, indent=2))


def plot(labels, mean, std, target, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in mean:
        ax.plot(labels, mean[name], label=name)
        ax.fill_between(labels, mean[name] - std[name], mean[name] + std[name], alpha=0.2)
    ax.axhline(target, color="grey", ls=":", lw=1, label="random @ max labels")
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (7 classes)")
    ax.set_title("Active learning on the demo survey (mean ± std, 3 seeds)")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
