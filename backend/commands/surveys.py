"""``python -m backend surveys``: list surveys with count, bands, shape and source."""

from __future__ import annotations

import argparse
import json

from backend.config import get_settings
from backend.survey import list_surveys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("surveys", help="list the surveys in the data root")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    metas = list_surveys()
    if args.json:
        print(json.dumps([m.to_dict() for m in metas], indent=2))
        return 0
    if not metas:
        root = get_settings().surveys_dir
        print(f"no surveys in {root}; create one with `python -m backend simulate --survey demo`")
        return 0
    rows = [("NAME", "COUNT", "BANDS", "SHAPE", "PIXEL", "SOURCE", "CREATED")]
    for m in metas:
        c, h, w = m.image_shape
        scale = f'{m.pixel_scale:.3g}"' if m.pixel_scale else "-"
        rows.append(
            (m.name, f"{m.count:,}", ",".join(m.bands), f"{c}x{h}x{w}", scale, m.source, m.created)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(wd) for cell, wd in zip(r, widths, strict=True)).rstrip())
    return 0
