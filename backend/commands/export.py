"""``python -m backend export --survey S --format hats --out DIR``: a survey for other tools.

``hats``: the catalog, every per-object product of the survey's active models (embeddings,
predictions, map coordinates, anomaly scores; columns named with their model version) and the
cutouts, as a HATS collection (HEALPix-partitioned parquet and a margin cache) that LSDB opens
and cross-matches, with one zarr array of cutouts per partition (layout: ``backend.hats``).
``python -m backend ingest hats DIR`` reads it back. The cutouts are copied by tasks on
``--scheduler``, whose workers must see the survey and DIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.argtypes import positive_int
from backend.cli import add_scheduler_option
from backend.hats.layout import DEFAULT_PARTITION_ROWS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a survey with its products and cutouts (HATS, for LSDB)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--survey", required=True, metavar="NAME")
    p.add_argument("--format", required=True, choices=["hats"], help="hats: HATS catalog")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to create")
    p.add_argument(
        "--partition-rows",
        type=positive_int,
        default=DEFAULT_PARTITION_ROWS,
        metavar="N",
        help=f"at most N objects per HEALPix partition (default {DEFAULT_PARTITION_ROWS:,})",
    )
    p.add_argument(
        "--margin-arcsec",
        type=float,
        default=5.0,
        metavar="ARCSEC",
        help="margin cache width, for cross-matches across partition edges (default 5; 0: none)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scheduler_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.hats.export import export_hats

    report = export_hats(
        args.survey,
        args.out,
        max_rows=args.partition_rows,
        margin_arcsec=args.margin_arcsec,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        scheduler=args.scheduler,
    )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(report.summary())
    return 0
