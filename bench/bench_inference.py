"""Encoder inference throughput (P5): images/s at 64x64x4, batch 256, on this machine.

    .venv/bin/python bench/bench_inference.py [--threads 2] [--batch 256] [--n 10240]

Measures the default SimCLR encoder (``ResidualBackbone``, 128-d embeddings) three ways:
``forward_raw`` (eval mode, as trained), ``forward_prepared`` (BatchNorm folded, channels-last:
what :func:`models.embed` runs) and ``embed_memory`` / ``embed_zarr`` (``models.embed`` end to
end over an in-memory array and over a chunked zarr array, reads and output writes included).
Each figure is the median and the best of several timed repeats: on a shared CPU other jobs
can slow a repeat several-fold, and the best repeat is the closest to an unloaded machine (the
load average before and after is recorded). Also times one training step (batch 256, forward +
backward + AdamW, augmentations included) of each image model, which sets what a time-boxed
first run can do. Prints the figures and writes ``bench/results/inference.json``. Targets:
>= 1,000 images/s on two CPU cores; >= 20,000 images/s on a GPU (run with ``--device cuda``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import (
    AugmentConfig,
    ConvAutoencoder,
    Emulator,
    SimCLREncoder,
    embed,
    pick_device,
    prepare_for_inference,
)
from models.device import autocast, tune_cpu_allocator

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"
BANDS = ["g", "r", "i", "z"]


def rates(run: Callable[[], int], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Images/s of ``run`` (which returns how many images it processed) over ``repeats``."""
    for _ in range(warmup):
        run()
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = run()
        values.append(n / (time.perf_counter() - start))
    return {
        "median": round(statistics.median(values), 1),
        "best": round(max(values), 1),
        "worst": round(min(values), 1),
    }


def training_rates(device: torch.device, batch: int, repeats: int) -> dict[str, dict]:
    """Images/s of one optimiser step of each image model (augmentations included)."""
    x = torch.randn(batch, 4, 64, 64, device=device)
    y = torch.rand(batch, 2, device=device) + 0.5
    kinds = {
        "simclr": SimCLREncoder(BANDS, augment=AugmentConfig.contrastive(0.262)),
        "autoencoder": ConvAutoencoder(BANDS, augment=AugmentConfig.geometric()),
        "emulator": Emulator(BANDS, ["a", "b"]),
    }
    out = {}
    for name, model in kinds.items():
        model.to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> int:
            opt.zero_grad()
            with autocast(device, True):
                loss = model.training_loss({"inputs": x, "targets": y})
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return batch

        out[name] = rates(step, repeats, warmup=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--n", type=int, default=4096, help="images per end-to-end repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-train", action="store_true", help="skip the training-step timings")
    args = parser.parse_args()
    load_before = os.getloadavg()

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    tuned = tune_cpu_allocator() if device.type == "cpu" else False
    torch.manual_seed(0)
    model = SimCLREncoder(BANDS).eval().to(device)
    fast = prepare_for_inference(model, device)
    batch = torch.randn(args.batch, 4, 64, 64, device=device)
    batch_cl = batch.contiguous(memory_format=torch.channels_last)
    per_repeat = 4  # batches per timed repeat

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def forward(net: torch.nn.Module, x: torch.Tensor) -> Callable[[], int]:
        def run() -> int:
            with torch.inference_mode(), autocast(device, True):
                for _ in range(per_repeat):
                    net.embed(x)
            sync()
            return per_repeat * len(x)

        return run

    train = {} if args.no_train else training_rates(device, args.batch, max(3, args.repeats // 2))
    results: dict[str, dict[str, float]] = {}
    results["forward_raw"] = rates(forward(model, batch), args.repeats)
    results["forward_prepared"] = rates(forward(fast, batch_cl), args.repeats)

    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.n, 4, 64, 64)).astype(np.float32)
    out = np.empty((args.n, model.embedding_dim), np.float32)

    def end_to_end(source: object) -> Callable[[], int]:
        def run() -> int:
            embed(model, source, batch_size=args.batch, device=device, out=out)
            return args.n

        return run

    results["embed_memory"] = rates(end_to_end(images), args.repeats, warmup=1)
    with tempfile.TemporaryDirectory() as tmp:
        import zarr

        store = zarr.create_array(
            Path(tmp) / "images.zarr", shape=images.shape, chunks=(64, 4, 64, 64), dtype="f4"
        )
        store[:] = images
        results["embed_zarr"] = rates(end_to_end(store), args.repeats, warmup=1)

    for name, r in results.items():
        print(
            f"{name:17s} {r['median']:9.0f} images/s median  "
            f"(best {r['best']:.0f}, worst {r['worst']:.0f})"
        )
    for name, r in train.items():
        print(f"train step {name:12s} {r['median']:6.0f} images/s median (best {r['best']:.0f})")
    target = 20_000 if device.type == "cuda" else 1_000
    headline = results["embed_memory"]["best"]
    print(
        f"embed, best repeat: {headline:.0f} images/s; target >= {target}: "
        f"{'met' if headline >= target else 'NOT met'}"
    )
    result = {
        "benchmark": "inference",
        "model": "SimCLREncoder default (ResidualBackbone 32-64-128, 128-d)",
        "image_shape": [4, 64, 64],
        "batch_size": args.batch,
        "threads": args.threads,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "allocator_tuned": tuned,
        "parameters": sum(p.numel() for p in model.parameters()),
        "images_per_second": results,
        "headline_images_per_second": headline,
        "headline": "embed_memory best repeat (models.embed end to end, in-memory input)",
        "training_step_images_per_second": train,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "target_images_per_second": target,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
