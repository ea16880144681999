"""``python -m backend ingest <kind> [PATH] --survey NAME``: bring users' files into a survey.

Kinds: ``fits`` (folder of FITS cutouts), ``images`` (folder of PNG/JPEG), ``galaxy10``
(Galaxy10 DECaLS HDF5), ``hdf`` (the Hubble Deep Field shipped with scikit-image, cut into
galaxy stamps; no PATH needed), ``hats`` (a HATS catalog with cutouts, as ``export --format
hats`` writes it). Bad files are skipped and listed; a one-line summary is printed
and the full report is kept as ``ingest_report.json`` in the survey folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from backend.argtypes import positive_int
from backend.cli import add_scheduler_option
from backend.ingest.report import REPORT_FILE, IngestReport


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--survey", required=True, metavar="NAME", help="name of the survey to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing survey")
    p.add_argument(
        "--limit", type=positive_int, metavar="N", help="at most N objects (the first ones)"
    )
    p.add_argument(
        "--description", default="", metavar="TEXT", help="free text stored with the survey"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _size(p: argparse.ArgumentParser, resize_default: str) -> None:
    p.add_argument(
        "--size",
        type=positive_int,
        metavar="N",
        help="common N x N size (default: the most common size)",
    )
    p.add_argument(
        "--resize",
        choices=["crop", "resample"],
        default=resize_default,
        help=f"how cutouts reach the size: centre crop/pad or resample (default {resize_default})",
    )


def _catalog(p: argparse.ArgumentParser, sky: bool = True) -> None:
    g = p.add_argument_group("catalog join")
    g.add_argument(
        "--catalog", type=Path, metavar="FILE", help="CSV/parquet/FITS/VOTable catalog to join"
    )
    how = g.add_mutually_exclusive_group()
    how.add_argument(
        "--id-column", metavar="COL", help="catalog column holding the object ids (file stems)"
    )
    if sky:
        how.add_argument(
            "--match-radius",
            type=_positive_float,
            metavar="ARCSEC",
            help="join the nearest catalog source within this radius on the sky",
        )
        g.add_argument(
            "--ra-column", metavar="COL", help="catalog RA column in degrees (default: guessed)"
        )
        g.add_argument(
            "--dec-column", metavar="COL", help="catalog Dec column in degrees (default: guessed)"
        )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="ingest FITS cutouts, PNG/JPEG pictures, Galaxy10 HDF5, the Hubble Deep Field or HATS",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    f = kinds.add_parser("fits", help="a folder of FITS cutouts (2-D, cubes, one HDU per band)")
    f.add_argument("path", type=Path, help="folder (searched recursively) or one FITS file")
    _common(f)
    _size(f, "crop")
    f.add_argument(
        "--bands",
        type=_names,
        metavar="LIST",
        help="band names, comma separated, in the files' band order (default: from headers)",
    )
    f.add_argument(
        "--header-keys",
        type=_names,
        metavar="KEYS",
        default=["OBJECT"],
        help="header keys kept as catalog columns, comma separated (default OBJECT)",
    )
    _catalog(f)
    add_scheduler_option(f)  # the pixels are read per partition of files
    f.set_defaults(func=run, ingest=_fits)

    i = kinds.add_parser("images", help="a folder of PNG/JPEG colour cutouts (e.g. Galaxy Zoo)")
    i.add_argument("path", type=Path, help="folder (searched recursively) or one picture")
    _common(i)
    _size(i, "resample")
    _catalog(i, sky=False)
    add_scheduler_option(i)  # the pictures are decoded per partition of files
    i.set_defaults(func=run, ingest=_images)

    g = kinds.add_parser("galaxy10", help="the Galaxy10 DECaLS HDF5 file")
    g.add_argument("path", type=Path, help="Galaxy10_DECals.h5 (or a file of the same layout)")
    _common(g)
    g.add_argument(
        "--size", type=positive_int, metavar="N", help="downsample to N x N (e.g. 64 or 128)"
    )
    g.add_argument(
        "--chunk-size", type=positive_int, default=256, help="rows read at a time (default 256)"
    )
    _catalog(g)
    add_scheduler_option(g)  # the rows are read per partition of rows
    g.set_defaults(func=run, ingest=_galaxy10)

    h = kinds.add_parser("hdf", help="galaxy stamps from the Hubble Deep Field (scikit-image)")
    h.add_argument(
        "path", type=Path, nargs="?", help="another PNG/JPEG picture (default: the shipped HDF)"
    )
    _common(h)
    h.add_argument(
        "--size", type=positive_int, default=64, metavar="N", help="stamp size (default 64)"
    )
    h.add_argument(
        "--threshold", type=_positive_float, default=5.0, help="detection sigma (default 5)"
    )
    h.add_argument("--min-area", type=positive_int, default=20, help="minimum pixels (default 20)")
    h.add_argument(
        "--keep-edges", action="store_true", help="keep stamps crossing the picture edge"
    )
    add_scheduler_option(h)  # the stamps are cut per partition of detections
    h.set_defaults(func=run, ingest=_hdf)

    t = kinds.add_parser(
        "hats", help="a HATS catalog with cutouts (what `export --format hats` writes)"
    )
    t.add_argument("path", type=Path, help="the HATS catalog folder")
    t.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="folder the cutout_file column is relative to (default: the catalog folder)",
    )
    _common(t)
    add_scheduler_option(t)  # the cutouts are gathered per partition of objects
    t.set_defaults(func=run, ingest=_hats)


def _join_options(args: argparse.Namespace) -> dict:
    return {
        "catalog": args.catalog,
        "id_column": args.id_column,
        "match_radius": getattr(args, "match_radius", None),
        "ra_column": getattr(args, "ra_column", None),
        "dec_column": getattr(args, "dec_column", None),
    }


def _base(args: argparse.Namespace) -> dict:
    return {
        "overwrite": args.overwrite,
        "limit": args.limit,
        "progress": not args.no_progress,
        "description": args.description,
    }


def _fits(args: argparse.Namespace) -> IngestReport:
    from backend.ingest.fits import ingest_fits

    return ingest_fits(
        args.path,
        args.survey,
        size=args.size,
        resize=args.resize,
        bands=args.bands,
        header_keys=args.header_keys,
        scheduler=args.scheduler,
        **_join_options(args),
        **_base(args),
    )


def _images(args: argparse.Namespace) -> IngestReport:
    from backend.ingest.images import ingest_images

    return ingest_images(
        args.path,
        args.survey,
        size=args.size,
        resize=args.resize,
        scheduler=args.scheduler,
        **_join_options(args),
        **_base(args),
    )


def _galaxy10(args: argparse.Namespace) -> IngestReport:
    from backend.ingest.galaxy10 import ingest_galaxy10

    return ingest_galaxy10(
        args.path,
        args.survey,
        size=args.size,
        chunk_size=args.chunk_size,
        scheduler=args.scheduler,
        **_join_options(args),
        **_base(args),
    )


def _hdf(args: argparse.Namespace) -> IngestReport:
    from backend.ingest.hdf import ingest_hdf

    return ingest_hdf(
        args.survey,
        args.path,
        size=args.size,
        threshold=args.threshold,
        min_area=args.min_area,
        keep_edges=args.keep_edges,
        scheduler=args.scheduler,
        **_base(args),
    )


def _hats(args: argparse.Namespace) -> IngestReport:
    from backend.ingest.hats import ingest_hats

    return ingest_hats(
        args.path, args.survey, images=args.images, scheduler=args.scheduler, **_base(args)
    )


def run(args: argparse.Namespace) -> int:
    ingest: Callable[[argparse.Namespace], IngestReport] = args.ingest
    report = ingest(args)
    for line in report.skipped_lines():
        print(line, file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(report.summary())
    print(f"report: {Path(report.path) / REPORT_FILE}")
    return 0
