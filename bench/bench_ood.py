"""Domain shift: OOD scores (backend/latent/ood.py) of SDSS + Galaxy Zoo 1 against the demo.

1. Survey vs survey: a SimCLR encoder trained from random weights on the demo survey only
   (``--steps`` optimiser steps, colour-composite input so that it reads any survey through
   the input adapter, as the general encoder does); its reference is a sample of its own demo
   training embeddings. Scores of held-out demo objects vs every sdss_gz1 object: AUROC.
2. Within sdss_gz1: ``dont_know`` (artefacts, stars, bad images) vs the rest, with embeddings
   already made in a gz1 data root (``--gz1-home``: the gz1 survey's encoder versions, e.g.
   the fine-tuned gz1 encoder and general-v1 as shipped); the reference is the survey's own
   embeddings (leave-one-out: an object is not its own neighbour). AUROC.

Reads the demo survey from ``--demo-home`` and gz1 from ``--gz1-home`` (read only). Prints the
figures and writes ``bench/results/ood.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.latent import ood  # noqa: E402


def _embed(model: Any, survey: Any, rows: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for lo in range(0, len(rows), batch):
            x = torch.from_numpy(np.asarray(survey.cutouts(rows[lo : lo + batch]), np.float32))
            out.append(model.embed(x).numpy())
    return np.concatenate(out)


def _for_survey(model: Any, survey: Any) -> Any:
    """The same weights behind ``survey``'s composite adapter (adapters have no weights)."""
    from backend.modelling import general
    from models import build_model

    adapter = general.survey_adapter(survey)
    config = {**model.config, "bands": adapter.bands, "adapter": adapter.to_dict()}
    other = build_model(config)
    other.load_state_dict(model.state_dict())
    return other.eval()


def survey_vs_survey(demo_home: Path, gz1_home: Path, steps: int, seed: int) -> dict[str, Any]:
    from backend.modelling import general
    from backend.modelling.common import training_pixels
    from backend.modelling.train import _split, _train_config, adapted_normalization
    from backend.survey.store import Survey
    from models import (
        ArrayDataset,
        AugmentConfig,
        BackboneConfig,
        SimCLREncoder,
        fit,
        seed_everything,
    )

    demo = Survey.open("demo", demo_home / "surveys")
    gz1 = Survey.open("gz1", gz1_home / "surveys")
    seed_everything(seed)
    pixels = training_pixels(demo)
    adapter = general.survey_adapter(demo)
    model = SimCLREncoder(
        adapter.bands, backbone=BackboneConfig(embedding_dim=128, input_pool=2),
        normalization=adapted_normalization(pixels, adapter, seed),
        augment=AugmentConfig.composite(), adapter=adapter,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(len(demo), 1000, replace=False))
    train_rows = np.setdiff1d(np.arange(len(demo)), held)
    train, val = _split(ArrayDataset(pixels[train_rows]), 0.1, seed)
    t0 = time.perf_counter()
    result = fit(model, train, _train_config(max_steps=steps, batch_size=256, lr=3e-3,
                                             seed=seed, progress_bar=False), val=val)  # fmt: skip
    train_s = time.perf_counter() - t0
    model.eval()
    t0 = time.perf_counter()
    sample = np.sort(rng.choice(train_rows, min(ood.MAX_ROWS, len(train_rows)), replace=False))
    reference = ood.build_reference(_embed(model, demo, sample), source="demo (scratch)")
    demo_x = _embed(model, demo, held)
    gz1_x = _embed(_for_survey(model, gz1), gz1, np.arange(len(gz1)))
    demo_scores, gz1_scores = ood.score(reference, demo_x), ood.score(reference, gz1_x)
    by_k = {}
    for k in (1, 10, 50):
        ref_k = dataclasses.replace(reference, k=k)
        by_k[f"auroc_k{k}"] = ood.auroc(ood.score(ref_k, demo_x), ood.score(ref_k, gz1_x))
    return {
        "encoder": f"SimCLR from random weights on demo, {result.steps} steps, composite input",
        "train_seconds": round(train_s, 1), "score_seconds": round(time.perf_counter() - t0, 1),
        "reference_rows": len(reference.vectors), "k": reference.k,
        "held_out_demo": len(held), "gz1": len(gz1),
        "auroc_gz1_vs_demo": ood.auroc(demo_scores, gz1_scores), **by_k,
        "demo_summary": ood.summarise(demo_scores, reference),
        "gz1_summary": ood.summarise(gz1_scores, reference),
    }  # fmt: skip


def dont_know(gz1_home: Path, versions: list[str]) -> dict[str, Any]:
    import pandas as pd

    catalog = pd.read_parquet(gz1_home / "surveys" / "gz1" / "catalog.parquet")
    positive = (catalog["gz1_label"] == "dont_know").to_numpy()
    out = {"dont_know": int(positive.sum()), "rest": int((~positive).sum()), "encoders": {}}
    for version in versions:
        meta = json.loads((gz1_home / "models" / "encoder" / version / "meta.json").read_text())
        x = np.load(gz1_home / "products" / "gz1" / f"encoder-{version}" / "embeddings.npy")
        unit = ood.unit_rows(x)
        row = {"parent": meta.get("parent"), "init": meta.get("training", {}).get("init")}
        for k in (1, 5, 10, 50):
            scores = ood.knn_distance(unit, unit, k, leave_one_out=True)
            row[f"auroc_k{k}"] = ood.auroc(scores[~positive], scores[positive])
        shipped = ROOT / "assets" / "encoders" / "general-v1" / ood.REFERENCE_FILE
        if meta.get("parent") == "general:general-v1" and shipped.is_file():
            ref = ood.load_reference(shipped)  # general-v1 as shipped: its corpus reference
            scores = ood.score(ref, x)
            row["corpus_reference"] = {
                "source": ref.source, "k": ref.k,
                "auroc": ood.auroc(scores[~positive], scores[positive]),
                "summary": ood.summarise(scores, ref),
            }  # fmt: skip
        out["encoders"][version] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo-home", type=Path, default=Path("/tmp/fresh-time/var"))
    p.add_argument("--gz1-home", type=Path, default=Path("/work/exp/bench-gz1"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--versions", default="v0003,v0002", help="gz1 encoder versions")
    p.add_argument("--skip-train", action="store_true", help="only the within-gz1 part")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "ood.json")
    a = p.parse_args(argv)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }
    results["within_gz1"] = dont_know(a.gz1_home, a.versions.split(","))
    print(json.dumps(results["within_gz1"], indent=2), flush=True)
    if not a.skip_train:
        results["survey_vs_survey"] = survey_vs_survey(a.demo_home, a.gz1_home, a.steps, a.seed)
        print(json.dumps(results["survey_vs_survey"], indent=2), flush=True)
    elif a.json.is_file():  # keep the survey-vs-survey figures of an earlier full run
        results["survey_vs_survey"] = json.loads(a.json.read_text()).get("survey_vs_survey")
    results["load_after"] = round(os.getloadavg()[0], 1)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
