"""``python -m backend embed --survey NAME [--model VERSION]``: embeddings of every object,
made through the pipeline (:func:`backend.pipeline.runner.ensure`), so they carry their lineage
record at once; embeddings that are current already are kept."""

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
    from backend.modelling.common import resolve_version
    from backend.pipeline.runner import ensure
    from backend.registry import ModelRegistry

    version = resolve_version(ModelRegistry(), args.survey, "encoder", args.model)
    outcome = ensure(
        args.survey, ["embeddings"], args.scheduler, versions={"encoder": version.version},
        params={"embeddings": {"batch_size": args.batch_size}},
    )  # fmt: skip
    for key in outcome.plan.requested:
        item = outcome.plan.items[key]
        state = "made" if key in outcome.records else item.status
        print(
            f"embeddings of survey {args.survey!r} with encoder {version.version} ({state}): "
            f"{item.target.paths[0]}"
        )
    return 0
