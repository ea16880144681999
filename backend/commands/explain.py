"""``python -m backend explain --survey S --id ID [--neighbour ID] [--out F.png]``: why the
models see this object as they do (attribution maps, residual map, scorer contributions,
contrast neighbours and labelled exemplars), as a figure and a few printed lines."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="explain one object's prediction, similarity and anomaly")
    p.add_argument("--survey", required=True)
    p.add_argument("--id", required=True, dest="object_id", help="object id")
    p.add_argument("--neighbour", help="object id whose similarity to explain (default: nearest)")
    p.add_argument("--out", type=Path, help="figure file (default: explain-<id>.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.explain import explain_object, load_context
    from backend.explain.figure import save_figure
    from models.explain import energy_inside, excess_residual

    ctx = load_context(args.survey)
    expl = explain_object(ctx, args.object_id, args.neighbour)
    out = save_figure(expl, args.out or Path(f"explain-{expl.object_id}.png"))
    print(f"{expl.object_id}: {expl.anomaly_type or 'no injected anomaly'}")
    if expl.predicted:
        p = expl.probabilities
        print(f"  predicted {expl.predicted} ({p[expl.predicted]:.2f}), runner-up "
              f"{expl.runner_up} ({p[expl.runner_up]:.2f})")  # fmt: skip
        for name, ids in expl.exemplars.items():
            print(f"  labelled {name}: {', '.join(ids)}")
    if expl.neighbour_id:
        print(f"  similarity to {expl.neighbour_id}: {expl.similarity:.3f}")
    if expl.scorers:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in expl.scorers.items())
        print(f"  anomaly {expl.anomaly_score:.2f} ({parts})")
    if expl.ordinary_neighbours:
        print(f"  ordinary neighbours: {', '.join(expl.ordinary_neighbours)}")
    if expl.mask is not None and expl.residual is not None:
        print(f"  recorded region: {expl.mask.mean():.1%} of the cutout holds "
              f"{energy_inside(excess_residual(expl.residual), expl.mask):.0%} of the residual "
              "energy above the noise and "
              f"{energy_inside(expl.anomaly_map, expl.mask):.0%} of the anomaly attribution")  # fmt: skip
    print(f"  explained in {expl.seconds * 1000:.0f} ms; figure: {out}")
    return 0
