"""Explanations checked against the simulator's truth, and their speed, on a simulated survey.

    LATENTSKY_HOME=/tmp/fresh-time/var .venv/bin/python bench/bench_explain.py [--survey demo]

For every injected anomaly of the survey: the fraction of the autoencoder's residual energy
above the noise (:func:`models.explain.excess_residual`; the raw fraction beside it) and
of the anomaly attribution (Integrated Gradients of the reconstruction error) inside the
recorded region, with the region's area fraction beside it; per kind the median and the share
of objects meeting the issue's targets (residual >= 70 %, attribution >= 50 %). The masks are
the survey's ``anomaly_masks.npz``; a demo survey simulated before masks were recorded gets
them by rendering its anomalous rows again from its seed (each re-rendered image must equal the
stored one bit for bit, or the bench stops). Then the time of one object's full explanation on
CPU after the models are loaded (median and p95 of ``--repeats`` objects). Prints the figures
and writes ``bench/results/explain.json`` (key: the survey name).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_file import merge_results

RESULTS = Path(__file__).resolve().parent / "results" / "explain.json"
TARGETS = {"residual": 0.70, "attribution": 0.50}
CHECKED_KINDS = ("satellite_track", "cosmic_ray", "detector_artifact")


def recorded_masks(ctx) -> dict[int, np.ndarray]:
    """Row -> mask of every anomalous row (stored, else rendered again and verified)."""
    from backend.simulate.survey import render_object_with_mask

    catalog = ctx.survey.catalog
    rows = np.flatnonzero(catalog["anomaly_type"].fillna("").to_numpy() != "")
    if ctx.masks is not None:
        return {int(r): ctx.masks.get(int(r)) for r in rows}
    extra = ctx.survey.meta.extra
    if extra.get("simulator") != "backend.simulate":
        raise SystemExit(f"survey {ctx.survey.name!r} is not simulated: no recorded regions")
    out = {}
    for r in rows:
        image, _, mask = render_object_with_mask(
            int(r), int(extra["seed"]), anomaly_fraction=float(extra["anomaly_fraction"]),
            id_prefix=ctx.survey.name,
        )  # fmt: skip
        if not np.array_equal(image, ctx.survey.cutout(int(r))):
            raise SystemExit(f"row {r}: rendering again does not give the stored image")
        out[int(r)] = mask
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", default="demo")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from backend.explain import explain_object, load_context
    from models.explain import anomaly_attribution, energy_inside, excess_residual, residual_map

    t0 = time.perf_counter()
    ctx = load_context(args.survey)
    load_s = time.perf_counter() - t0
    masks = recorded_masks(ctx)
    kinds = ctx.survey.catalog["anomaly_type"].to_numpy()
    per_kind: dict[str, dict[str, list[float]]] = {}
    for row, mask in masks.items():
        image = np.asarray(ctx.survey.cutout(row), dtype=np.float32)
        res = residual_map(ctx.autoencoder, image)
        att = anomaly_attribution(ctx.autoencoder, image)
        entry = per_kind.setdefault(
            str(kinds[row]), {"residual": [], "raw_residual": [], "attribution": [], "area": []}
        )
        entry["residual"].append(energy_inside(excess_residual(res), mask))
        entry["raw_residual"].append(energy_inside(res, mask))
        entry["attribution"].append(energy_inside(att, mask))
        entry["area"].append(float(mask.mean()))
    figures: dict[str, object] = {"kinds": {}}
    print(f"{'kind':18s} {'n':>3s} {'residual':>9s} {'(raw)':>6s} {'attrib.':>8s} {'area':>6s}"
          "  met(res/attr)")  # fmt: skip
    for kind, entry in sorted(per_kind.items()):
        res, raw, att, area = (
            np.asarray(entry[k]) for k in ("residual", "raw_residual", "attribution", "area")
        )
        row = {
            "n": len(res),
            "residual_inside_median": round(float(np.median(res)), 3),
            "raw_residual_inside_median": round(float(np.median(raw)), 3),
            "attribution_inside_median": round(float(np.median(att)), 3),
            "area_fraction_median": round(float(np.median(area)), 4),
            "residual_met_share": round(float(np.mean(res >= TARGETS["residual"])), 3),
            "attribution_met_share": round(float(np.mean(att >= TARGETS["attribution"])), 3),
            "checked_kind": kind in CHECKED_KINDS,
        }
        figures["kinds"][kind] = row
        print(f"{kind:18s} {row['n']:3d} {row['residual_inside_median']:9.3f} "
              f"{row['raw_residual_inside_median']:6.3f} "
              f"{row['attribution_inside_median']:8.3f} {row['area_fraction_median']:6.3f}  "
              f"{row['residual_met_share']:.2f}/{row['attribution_met_share']:.2f}")  # fmt: skip
    rng = np.random.default_rng(0)
    picks = list(rng.choice(sorted(masks), size=min(args.repeats // 2, len(masks)), replace=False))
    picks += list(rng.choice(len(ctx.survey), size=args.repeats - len(picks), replace=False))
    ids = ctx.survey.catalog["object_id"].to_numpy()
    explain_object(ctx, str(ids[picks[0]]))  # warm-up: first calls build torch's kernels
    times, cpu = [], []
    for row in picks:
        start, start_cpu = time.perf_counter(), time.process_time()
        explain_object(ctx, str(ids[row]))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    t = np.asarray(times) * 1000
    figures["explain_ms"] = {
        "median": round(float(np.median(t)), 1),
        "p95": round(float(np.percentile(t, 95)), 1),
        "cpu_median": round(float(np.median(cpu)) * 1000, 1),
        "objects": len(t),
        "torch_threads": torch.get_num_threads(),
        "target_ms": 500,
    }
    figures["load_s"] = round(load_s, 2)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    figures["command"] = "bench/bench_explain.py --survey " + args.survey
    print(f"one object's full explanation: median {figures['explain_ms']['median']} ms "
          f"(CPU {figures['explain_ms']['cpu_median']} ms), "
          f"p95 {figures['explain_ms']['p95']} ms ({len(t)} objects, "
          f"{torch.get_num_threads()} torch thread(s)); models loaded in {load_s:.1f} s; "
          f"load average {figures['load_average']}")  # fmt: skip
    merge_results(RESULTS, args.survey, figures)


if __name__ == "__main__":
    main()
