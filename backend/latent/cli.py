"""Command-line front ends of the latent services: ``map``, ``index``, ``search``, ``score``.

Each command has an ``add_<name>_parser(subparsers)`` here; ``backend/latent/commands/<name>.py``
re-exports it as ``add_parser`` for ``backend.cli.COMMANDS``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from backend.cli import add_scheduler_option
from backend.errors import UserError
from backend.latent.errors import LatentError
from backend.registry import RegistryError

RunFn = Callable[[argparse.Namespace], int]
SHOWN_COLUMNS = ("rank", "index", "object_id", "similarity", "ra", "dec")


def user_errors(run: RunFn) -> RunFn:
    """Report the latent services' own errors as one ``error:`` line (exit 2)."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (LatentError, RegistryError) as exc:
            raise UserError(str(exc)) from None

    return wrapper


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--survey", required=True, help="survey name")
    p.add_argument(
        "--model",
        default=None,
        metavar="VERSION",
        help="encoder version (default: the survey's active encoder, else its latest)",
    )


# -- map ----------------------------------------------------------------------------------------
def add_map_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="2-D UMAP map of a survey's embeddings (landmarks + kNN)")
    _common(p)
    p.add_argument("--landmarks", type=int, default=20_000, help="UMAP landmarks (default 20000)")
    p.add_argument("--seed", type=int, default=0)
    add_scheduler_option(p)
    p.set_defaults(func=run_map)


@user_errors
def run_map(args: argparse.Namespace) -> int:
    from backend.latent.pipeline import make_map
    from backend.latent.projection import MapParams
    from backend.pipeline.execution import executor

    if args.landmarks < 10:
        raise UserError("--landmarks must be at least 10")
    params = MapParams(n_landmarks=args.landmarks, seed=args.seed)
    with executor(args.scheduler):  # map placement runs per partition there
        out = make_map(args.survey, args.model, params, True)
    timings = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in out.info.get("timings", {}).items())
    print(f"map of {out.info['n']:,} objects ({out.survey}, encoder {out.version}): {timings}")
    print(f"written to {out.path} in {out.seconds:.1f} s")
    return 0


# -- index --------------------------------------------------------------------------------------
def add_index_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build the similarity-search index (FAISS) of a survey")
    _common(p)
    p.add_argument(
        "--kind",
        choices=("auto", "flat", "hnsw", "ivf", "ivfpq"),
        default="auto",
        help="auto: exact up to 100k objects, HNSW up to 2M, IVF up to "
        "LATENTSKY_COMPRESSED_INDEX_ABOVE (5M), compressed IVF-PQ above",
    )
    add_scheduler_option(p)
    p.set_defaults(func=run_index)


@user_errors
def run_index(args: argparse.Namespace) -> int:
    from backend.latent.pipeline import make_index
    from backend.pipeline.execution import executor

    with executor(args.scheduler):  # vectors are added per partition there
        out = make_index(args.survey, args.model, args.kind, progress=True)
    tuned = {
        k: out.info[k]
        for k in ("ef_search", "nprobe", "rerank_depth", "tuned_recall_at_10")
        if k in out.info
    }
    extra = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in tuned.items()
    )
    head = f"{out.info['kind']} index of {out.info['n']:,} objects ({out.survey}, {out.version})"
    print(head + (f": {extra}" if extra else ""))
    print(f"written to {out.path} in {out.seconds:.1f} s")
    return 0


# -- search -------------------------------------------------------------------------------------
def add_search_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find objects similar to an object, position or image")
    _common(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--id", help="object id (or row number with --id '#123')")
    what.add_argument("--radec", help="sky position: '150.1 2.2' (deg) or '10:00:24 +02:12:00'")
    what.add_argument("--image", type=Path, help="cutout file: FITS (C, H, W), PNG or .npy")
    what.add_argument("--positive", help="comma-separated object ids to look like")
    p.add_argument("--negative", help="comma-separated object ids not to look like")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the negatives (0.5)")
    p.add_argument("--radius", type=float, default=5.0, help="--radec match radius in arcsec")
    p.add_argument("-k", type=int, default=20, help="results (1-10000, default 20)")
    p.add_argument(
        "--dedupe-arcsec",
        type=float,
        default=None,
        help="drop results within this many arcsec of a better one",
    )
    p.add_argument(
        "--fill-nonfinite",
        action="store_true",
        help="replace NaN/inf pixels of --image by 0 instead of refusing it",
    )
    p.add_argument("--output", type=Path, help="also write the results: .csv, .fits or .vot")
    p.add_argument("--all-columns", action="store_true", help="print every catalog column")
    p.set_defaults(func=run_search)


@user_errors
def run_search(args: argparse.Namespace) -> int:
    from backend.latent.service import latent_services

    if args.negative and not args.positive:
        raise UserError("--negative needs --positive")
    services = latent_services(args.survey, args.model)
    search = services.search()
    common = {"k": args.k, "dedupe_arcsec": args.dedupe_arcsec}
    if args.id is not None:
        ref: int | str = int(args.id[1:]) if args.id.startswith("#") else args.id
        result = search.by_object(ref, **common)
    elif args.radec is not None:
        result = search.by_position(args.radec, radius_arcsec=args.radius, **common)
    elif args.image is not None:
        from backend.latent.embedder import encoder_embedder
        from backend.latent.images import read_image_file

        image = read_image_file(args.image, search.survey.meta)
        embed = encoder_embedder(services.version, tuple(search.survey.bands))
        nonfinite = "fill" if args.fill_nonfinite else "error"
        result = search.by_image(image, embed, nonfinite=nonfinite, **common)
    else:
        result = search.by_examples(
            _ids(args.positive), _ids(args.negative), alpha=args.alpha, **common
        )
    print(_describe(result, services.version))
    print(format_results(result, all_columns=args.all_columns))
    if args.output:
        from backend.latent.export import export_table

        print(f"written to {export_table(result, args.output)}")
    return 0


def _ids(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _describe(result: pd.DataFrame, version: str) -> str:
    q = result.attrs.get("query", {})
    head = f"{len(result)} objects of {result.attrs.get('survey')} (encoder {version}) like "
    if q.get("type") == "position":
        return head + f"{q['object_id']} ({q['separation_arcsec']:.2f} arcsec from the position)"
    if q.get("type") == "object":
        return head + str(q["object_id"])
    if q.get("type") == "examples":
        return head + f"{len(q['positive'])} positive / {len(q['negative'])} negative examples"
    return head + "the uploaded image"


def format_results(result: pd.DataFrame, all_columns: bool = False) -> str:
    cols = list(result.columns) if all_columns else [c for c in SHOWN_COLUMNS if c in result]
    formats = {"ra": "{:.6f}", "dec": "{:+.6f}", "similarity": "{:.4f}", "distance": "{:.4f}"}
    formatters = {c: formats[c].format for c in cols if c in formats}
    return result[cols].to_string(
        index=False, formatters=formatters, float_format=lambda v: f"{v:.5g}"
    )


# -- score --------------------------------------------------------------------------------------
def add_score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="rank a survey's objects by anomaly score")
    _common(p)
    p.add_argument("--lof", action="store_true", help="add the local outlier factor scorer")
    p.add_argument(
        "--scorers",
        default=None,
        help="comma-separated scorers (default: knn,sharpness,asymmetry; also recon, "
        "recon_peak, recon_excess, iforest, lof)",
    )
    p.add_argument("--top", type=int, default=10, help="print this many top objects (10)")
    add_scheduler_option(p)
    p.set_defaults(func=run_score)


@user_errors
def run_score(args: argparse.Namespace) -> int:
    from backend.latent.anomaly import DEFAULT_SCORERS, SCORERS, AnomalyRanker
    from backend.latent.pipeline import make_scores
    from backend.pipeline.execution import executor

    scorers = DEFAULT_SCORERS
    if args.scorers:
        scorers = tuple(dict.fromkeys(n.strip() for n in args.scorers.split(",") if n.strip()))
        unknown = [n for n in scorers if n not in SCORERS]
        if unknown or not scorers:
            raise UserError(f"--scorers: unknown {unknown} (known: {', '.join(SCORERS)})")
    if args.lof and "lof" not in scorers:
        scorers = (*scorers, "lof")
    with executor(args.scheduler):  # objects are scored per partition there
        out = make_scores(args.survey, args.model, scorers, progress=True)
    for note in out.notes:
        print(note)
    top = AnomalyRanker.load(out.path).top(max(0, args.top))
    cols = ["rank", "object_id", "anomaly", *out.info["scorers"]]
    print(top[[c for c in cols if c in top]].to_string(index=False, float_format="{:.4f}".format))
    print(f"scores ({', '.join(out.info['scorers'])}) written to {out.path} in {out.seconds:.1f} s")
    return 0
