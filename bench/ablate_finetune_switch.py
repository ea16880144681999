"""Issue 9 ablation: why a 20-step ``supervised`` fine-tune at the 1,000-label switch lost
accuracy in the S1 loop (lr, the NT-Xent regulariser, or a random head).

From a 950-label state (the demo's encoder + 200 steps of labels + NT-Xent on 950 random
labels), one 20-step fine-tune at 1,000 labels per variant and fine-tune seed; then the S1
bench's head on the new embeddings and its accuracy on the bench's 2,000 test objects.
"warm head" fits the head on the frozen features first (what the product now does by default).

    cp -r <data root>/surveys/demo DIR/surveys/; cp -r <data root>/models/encoder/v0001 \
        DIR/models/encoder/   # a writable copy: fine-tunes are registered there
    LATENTSKY_HOME=DIR .venv/bin/python bench/ablate_finetune_switch.py [SEEDS] [NAMES]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(os.environ.get("LATENTSKY_HOME", "var")).resolve()
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from bench_active_s1 import predictions, train_head  # noqa: E402

import models.finetune as mf  # noqa: E402
from backend.modelling.common import load_model  # noqa: E402
from backend.modelling.finetune import finetune_encoder  # noqa: E402
from backend.registry import ModelRegistry  # noqa: E402
from backend.survey import Survey  # noqa: E402
from models import embed  # noqa: E402

BASE = mf.LabelFineTuner
WARM: dict = {}


class WarmHead(BASE):
    """The head fitted on frozen features of the labelled rows before the fine-tune."""

    def __init__(self, encoder, n_classes, **kw):
        super().__init__(encoder, n_classes, **kw)
        x, t = WARM["x"], WARM["t"]
        was = encoder.training
        encoder.eval()
        with torch.no_grad():
            h = torch.cat([encoder(x[i : i + 256]) for i in range(0, len(x), 256)]).float()
        encoder.train(was)
        opt = torch.optim.AdamW(self.head.parameters(), lr=1e-2, weight_decay=1e-4)
        self.head.train()
        for _ in range(300):
            opt.zero_grad()
            mf.soft_cross_entropy(self.head(h), t, self.class_weights).backward()
            opt.step()


def main() -> None:
    fseeds = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "0").split(",")]
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    survey = Survey.open("demo")
    pixels = np.asarray(survey.images[:])
    bands = list(survey.bands)
    cat = pd.read_parquet(HERE / "surveys/demo/catalog.parquet", columns=["true_class"])
    classes = sorted(cat["true_class"].unique())
    y = cat["true_class"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    test = np.sort(np.random.default_rng(12345).choice(len(y), 2000, replace=False))
    pool = np.setdiff1d(np.arange(len(y)), test)
    order = np.random.default_rng(0).permutation(pool)
    r950, r1000 = np.sort(order[:950]), np.sort(order[:1000])

    def known(rows):
        k = np.full(len(y), -1, np.int64)
        k[rows] = y[rows]
        return k

    def accuracy(version: str, rows: np.ndarray) -> float:
        model = load_model(ModelRegistry().get("encoder", version))
        sub = np.concatenate([rows, test])
        x = embed(model, pixels[sub], bands=bands, batch_size=512, device="cpu", progress_bar=False)
        x = np.ascontiguousarray(x, dtype=np.float32)
        ys = y[sub]
        head = train_head(x, ys, np.arange(len(rows)), len(classes), 0)
        probs = predictions(head, x)[[f"p_{i}" for i in range(len(classes))]].to_numpy()
        return float((probs[len(rows) :].argmax(1) == ys[len(rows) :]).mean())

    state_file = HERE / "ablation_s950.json"
    if state_file.exists():
        s950 = json.loads(state_file.read_text())["version"]
    else:
        t0 = time.perf_counter()
        v = finetune_encoder(
            "demo",
            known(r950),
            classes,
            r950,
            encoder_version="v0001",
            steps=200,
            seed=1,
            progress_bar=False,
        )
        s950 = v.version
        state_file.write_text(json.dumps({"version": s950, "seconds": time.perf_counter() - t0}))
    variants = {
        "none": None,
        "labels+ssl lr3e-4 (control)": dict(recipe="labels+ssl"),
        "labels+ssl lr1e-3": dict(recipe="labels+ssl", lr=1e-3),
        "labels lr3e-4": dict(recipe="labels"),
        "supervised lr1e-3 (default)": dict(recipe="supervised"),
        "supervised lr3e-4": dict(recipe="supervised", lr=3e-4),
        "supervised lr1e-3 warm head": dict(recipe="supervised", warm=True),
        "supervised lr3e-4 warm head": dict(recipe="supervised", lr=3e-4, warm=True),
        "labels+ssl lr3e-4 warm head": dict(recipe="labels+ssl", warm=True),
        "product default (fix d6039de)": dict(product=True),
    }
    out_file = HERE / "ablation.json"  # bench/results/finetune_switch_ablation.json
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    results.setdefault("state950", s950)
    results.setdefault("rows", {})
    if "acc950@950" not in results:
        results["acc950@950"] = accuracy(s950, r950)
    x_lab = torch.from_numpy(np.asarray(pixels[r1000], np.float32))
    for name, kw in variants.items():
        if only and not any(o in name for o in only):
            continue
        for fs in fseeds if kw is not None else [0]:
            key = f"{name} | seed {fs}"
            if key in results["rows"]:
                continue
            t0 = time.perf_counter()
            if kw is None:
                version = s950
            else:
                kw = dict(kw)
                warm = kw.pop("warm", False)
                if kw.pop("product", False):  # the product's own code path, all defaults
                    import backend.modelling.finetune as bf

                    assert "warm_head" in bf.finetune_encoder.__code__.co_varnames
                mf.LabelFineTuner = WarmHead if warm else BASE
                if warm:
                    t = torch.from_numpy(mf_targets(y, r1000, classes, kw["recipe"]))
                    WARM.update(x=x_lab, t=t)
                version = finetune_encoder(
                    "demo",
                    known(r1000),
                    classes,
                    r1000,
                    encoder_version=s950,
                    steps=20,
                    seed=fs,
                    progress_bar=False,
                    **kw,
                ).version
                mf.LabelFineTuner = BASE
            acc = accuracy(version, r1000)
            results["rows"][key] = {
                "accuracy": acc,
                "version": version,
                "seconds": round(time.perf_counter() - t0, 1),
                "load": round(os.getloadavg()[0], 2),
            }
            print(
                f"{key:45s} acc {acc:.4f} ({time.perf_counter() - t0:.0f} s, "
                f"load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            out_file.write_text(json.dumps(results, indent=1))


def mf_targets(y, rows, classes, recipe):
    t = np.zeros((len(rows), len(classes)), np.float32)
    t[np.arange(len(rows)), y[rows]] = 1.0
    if recipe == "supervised":
        t = t * 0.9 + 0.1 / len(classes)
    return t


if __name__ == "__main__":
    main()
