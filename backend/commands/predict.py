"""``python -m backend predict --survey NAME``: per-object predictions of the active models,
made through the pipeline (:func:`backend.pipeline.runner.ensure`), so they carry their lineage
record at once (and the embeddings a classifier reads are made first when missing)."""

from __future__ import annotations

import argparse

from backend.cli import add_scheduler_option
from backend.errors import UserError

KINDS = ("classifier", "emulator", "autoencoder")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="class probabilities, entropy, BALD, emulated properties and reconstruction error",
    )
    p.add_argument("--survey", required=True)
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated model kinds")
    add_scheduler_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.pipeline.runner import ensure

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UserError(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    outcome = ensure(args.survey, [f"predictions:{k}" for k in kinds], args.scheduler)
    if not outcome.plan.requested:
        raise UserError(
            f"no trained models for survey {args.survey!r}; run `python -m backend prepare`"
        )
    for key in outcome.plan.requested:
        item = outcome.plan.items[key]
        state = "made" if key in outcome.records else item.status
        print(f"{item.target.kind} {item.target.version} ({state}): {item.target.paths[0]}")
    return 0
