"""``python -m backend embed --survey NAME [--model VERSION]``: embeddings of every object."""

from __future__ import annotations

import argparse

from backend.cli import add_scheduler_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed every object of a survey with an encoder")
    p.add_argument("--survey", required=True)
    p.add_argument("--model", help="encoder version (default: the survey's active encoder)")
    p.add_argument("--batch-size", type=int, default=512)
    add_scheduler_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.modelling.infer import embed_survey

    version, path = embed_survey(
        args.survey, args.model, batch_size=args.batch_size, scheduler=args.scheduler
    )
    print(f"embeddings of survey {args.survey!r} with encoder {version.version}: {path}")
    return 0
