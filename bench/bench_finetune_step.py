"""What a fine-tune step costs: flip-invariant vs mirror-equivariant, CPU-s per step (issue 9).

The product's fine-tune (``backend.modelling.finetune.finetune_encoder``, recipe ``supervised``
by default) is run twice on the same training rows, one torch thread:

- ``flip-invariant``: the mirror pair merged into one class, flips on (the recipe bench's
  5-class task on sdss_gz1);
- ``mirror-equivariant``: the pair kept, a mirror-equivariant head (``models.mirror``: one more
  backbone pass per labelled cutout), no flips (the finetune job's 6-class task).

Each records wall and CPU seconds per optimiser step after ``--warmup`` steps (the set-up,
the warm head's fit and the first steps' allocations are not counted), from the training
loop's own progress callback. ``--parts`` also times, on one batch, the augmentation and one
backbone forward + backward pass. It registers two inactive encoder versions: run it on a copy
of a data root::

    LATENTSKY_HOME=/copy/of/gz1-root OMP_NUM_THREADS=1 .venv/bin/python \\
        bench/bench_finetune_step.py --survey gz1 --label-column gz1_label \\
        --pair spiral_cw,spiral_acw --steps 100 --parts --key gz1

Results are printed and merged by ``--key`` into ``bench/results/finetune_step.json``. The
figures are CPU time of one thread; wall time on a shared machine also depends on what else
runs (and at which nice level).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results" / "finetune_step.json"


def step_costs(
    survey: str,
    names: np.ndarray,
    train_rows: np.ndarray,
    pair: tuple[str, str],
    *,
    mirror_equivariant: bool,
    steps: int,
    warmup: int,
    recipe: str = "supervised",
    encoder: str | None = None,
) -> dict[str, Any]:
    """Fine-tune ``survey`` on class ``names`` (one per object) at ``train_rows``; the pair
    merged (flips on) or mirror-equivariant (no flips). Wall and CPU seconds per step after
    ``warmup`` steps, with the registered version and its recorded recipe."""
    from backend.modelling.finetune import finetune_encoder

    names = np.asarray(names).astype(str)
    if not mirror_equivariant:
        names = np.where(np.isin(names, pair), "+".join(pair), names)
    classes = sorted(set(names.tolist()))
    labels = np.array([classes.index(n) for n in names], np.int64)
    marks: list[tuple[int, float, float]] = []

    def progress(info: dict[str, Any]) -> bool:
        if info.get("phase") == "train":  # one call per optimiser step (others: epoch ends)
            marks.append((int(info["step"]), time.perf_counter(), time.process_time()))
        return True

    version = finetune_encoder(
        survey, labels, classes, train_rows, encoder_version=encoder, steps=steps,
        flip=not mirror_equivariant, mirror_pairs=[pair] if mirror_equivariant else (),
        recipe=recipe, progress=progress, progress_bar=False, task="bench finetune step",
    )  # fmt: skip
    first, last = marks[min(warmup, len(marks) - 1) - 1 if warmup else 0], marks[-1]
    counted = max(last[0] - first[0], 1)
    training = version.meta["training"]
    return {
        "variant": "mirror-equivariant" if mirror_equivariant else "flip-invariant",
        "classes": classes, "steps": len(marks), "counted_steps": counted,
        "wall_s_per_step": (last[1] - first[1]) / counted,
        "cpu_s_per_step": (last[2] - first[2]) / counted,
        "batch_size": training["batch_size"], "flip": training["flip"],
        "recipe": training["recipe"], "head": training["head"], "encoder": version.version,
    }  # fmt: skip


def step_parts(survey: str, encoder: str | None, batch: int = 64, repeat: int = 20) -> dict:
    """CPU seconds of one batch's augmentation and of one backbone forward + backward pass."""
    import torch

    from backend.modelling.common import load_model, resolve_version, training_pixels
    from backend.registry import ModelRegistry
    from backend.survey import Survey

    model = load_model(resolve_version(ModelRegistry(), survey, "encoder", encoder)).train()
    pixels = training_pixels(Survey.open(survey))
    rows = np.sort(np.random.default_rng(0).choice(len(pixels), batch, replace=False))
    x = torch.as_tensor(np.asarray(pixels[rows], np.float32))

    def cpu(fn: Any) -> float:
        fn()
        t = time.process_time()
        for _ in range(repeat):
            fn()
        return (time.process_time() - t) / repeat

    with torch.no_grad():
        view = model.augmented_view(x)

    def backbone() -> None:
        model.zero_grad(set_to_none=True)
        model.backbone(view).sum().backward()

    def augment() -> None:
        with torch.no_grad():
            model.augmented_view(x)

    return {"batch": batch, "augmentation_cpu_s": cpu(augment),
            "backbone_forward_backward_cpu_s": cpu(backbone)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", default="gz1")
    parser.add_argument("--label-column", default="gz1_label")
    parser.add_argument("--pair", default="spiral_cw,spiral_acw", help="the mirror pair: A,B")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--recipe", default="supervised")
    parser.add_argument("--encoder", help="encoder version to start from (default: active)")
    parser.add_argument("--parts", action="store_true", help="also time augmentation, backbone")
    parser.add_argument("--key", default="default")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch
    from results_file import merge_results

    from backend.survey import Survey
    from backend.validation import validation_split

    torch.set_num_threads(1)
    pair = tuple(args.pair.split(","))
    if len(pair) != 2:
        parser.error(f"--pair {args.pair!r}: give two class names, A,B")
    if args.steps <= args.warmup:
        parser.error(f"--steps {args.steps} must be more than --warmup {args.warmup}")
    survey = Survey.open(args.survey)
    names = survey.catalog[args.label_column].astype(str).to_numpy()
    kept = sorted(set(names.tolist()))
    split = validation_split(args.survey, "class", survey.catalog["object_id"].to_numpy(),
                             np.array([kept.index(n) for n in names]))  # fmt: skip
    figures: dict[str, Any] = {"survey": args.survey, "threads": torch.get_num_threads(),
                               "load_before": [round(v, 2) for v in os.getloadavg()]}  # fmt: skip
    for mirrored in (False, True):
        run = step_costs(args.survey, names, split.train_rows, pair, mirror_equivariant=mirrored,
                         steps=args.steps, warmup=args.warmup, recipe=args.recipe,
                         encoder=args.encoder)  # fmt: skip
        figures[run["variant"]] = run
        print(f"{run['variant']:>18}: {run['cpu_s_per_step']:.3f} CPU-s / step, "
              f"{run['wall_s_per_step']:.3f} s / step ({run['counted_steps']} steps)")  # fmt: skip
    ratio = figures["mirror-equivariant"]["cpu_s_per_step"] / max(
        figures["flip-invariant"]["cpu_s_per_step"], 1e-12
    )
    figures["cpu_ratio_mirror_vs_flip"] = ratio
    print(f"mirror-equivariant / flip-invariant: {ratio:.2f}x CPU-s per step")
    if args.parts:
        figures["parts"] = step_parts(args.survey, args.encoder)
        print("parts:", json.dumps(figures["parts"]))
    figures["load_after"] = [round(v, 2) for v in os.getloadavg()]
    merge_results(args.json, args.key, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
