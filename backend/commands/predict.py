"""``python -m backend predict --survey NAME``: per-object predictions of the active models."""

from __future__ import annotations

import argparse

from backend.cli import add_scheduler_option
from backend.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="class probabilities, entropy, BALD, emulated properties and reconstruction error",
    )
    p.add_argument("--survey", required=True)
    p.add_argument(
        "--kinds", default="classifier,emulator,autoencoder", help="comma-separated model kinds"
    )
    add_scheduler_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.modelling.infer import PREDICTORS, predict_survey

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in PREDICTORS]
    if unknown:
        raise UserError(f"unknown kinds {unknown}; choose from {', '.join(PREDICTORS)}")
    written = predict_survey(args.survey, kinds, scheduler=args.scheduler)
    if not written:
        raise UserError(
            f"no trained models for survey {args.survey!r}; run `python -m backend prepare`"
        )
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0
