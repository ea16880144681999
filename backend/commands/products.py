"""``python -m backend products --survey S``: every product of a survey, its version, lineage
and whether it is up to date (and why not); ``--ensure`` makes what is missing or outdated.

    product      model             status      content   made                  seconds  why
    embeddings   encoder v0002     current     3f9a1c2b  2026-11-30T13:40:02   1.2      up to date
    map          encoder v0002     outdated    -         -                     -        made for encoder v0001; ...
"""

from __future__ import annotations

import argparse
from typing import Any

WIDTHS = (18, 17, 11, 9, 20, 8)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from backend.cli import add_scheduler_option

    p = sub.add_parser(
        "products",
        help="list a survey's products (version, lineage, up to date or why not); --ensure "
        "makes the missing and outdated ones",
    )
    p.add_argument("--survey", required=True, help="survey name")
    p.add_argument(
        "--products",
        default=None,
        help="comma-separated products (default: embeddings,predictions,map,index,scores,ood, "
        "tiles when the survey has at least LATENTSKY_TILED_MAP_ABOVE objects, and the "
        "evaluation reports made, and the pixel_scores the scores read; also mirror_embeddings, "
        "predictions:classifier|emulator|autoencoder)",
    )
    p.add_argument("--ensure", action="store_true", help="make what is missing or outdated")
    add_scheduler_option(p)
    p.set_defaults(func=run)


def rows(plan: Any) -> list[tuple[str, ...]]:
    """One row per product of ``plan``: product, model, status, hash, made, seconds, why."""
    out = []
    for item in plan.items.values():
        t, rec = item.target, item.record or {}
        model = f"task {t.version}" if t.kind == "task" else f"{t.kind} {t.version}"
        seconds = rec.get("seconds")
        out.append(
            (
                t.product,
                model,
                item.status,
                str(rec.get("content_hash", "-"))[:8],
                str(rec.get("created", "-"))[:19],
                "-" if seconds is None else f"{seconds:.1f}",
                item.reason,
            )
        )
    return out


def format_rows(table: list[tuple[str, ...]]) -> str:
    header = ("product", "model", "status", "content", "made", "seconds", "why")
    lines = []
    for row in [header, *table]:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], WIDTHS, strict=True)]
        lines.append(" ".join(cells) + " " + row[-1])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from backend.pipeline.kinds import default_products
    from backend.pipeline.planner import plan
    from backend.pipeline.runner import ensure

    asked = [n for n in (args.products or "").split(",") if n]
    names = asked or [*default_products(args.survey), "evaluation"]
    if args.ensure:
        outcome = ensure(args.survey, names, args.scheduler, report=print)
        print(f"ensure: {len(outcome.records)} product(s) made in {outcome.seconds:.0f} s")
    the_plan = plan(args.survey, names)
    print(format_rows(rows(the_plan)))
    for note in the_plan.notes:
        print(f"note: {note}")
    return 0
