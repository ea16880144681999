"""``python -m backend models``: list model versions with their key metrics; ``--activate``
makes one active by hand (:mod:`backend.active.activation`)."""

from __future__ import annotations

import argparse
import json

from backend.registry import MODEL_KINDS, ModelRegistry

# Metrics worth a column, in display order, when a version has them.
KEY_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "ece",
    "ece_calibrated",
    "nmad_redshift",
    "loss",
    "recon_error",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model versions and their metrics")
    p.add_argument("--kind", choices=MODEL_KINDS)
    p.add_argument("--survey", help="only versions trained on this survey")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--activate", metavar="KIND/VERSION",
        help="make this version active for --survey, whatever the gate said (a classifier "
        "brings the encoder it reads; an encoder's missing map, index and scores are made first)",
    )  # fmt: skip
    p.add_argument("--scheduler", help="with --activate: where missing products are made")
    p.set_defaults(func=run)


def activate(args: argparse.Namespace) -> int:
    from backend.active.activation import plan_activation, switch
    from backend.errors import UserError

    if not args.survey:
        raise UserError("--activate needs --survey (the survey whose active version changes)")
    kind, _, version = args.activate.partition("/")
    if kind not in MODEL_KINDS or not version:
        raise UserError(
            f"--activate {args.activate!r}: expected KIND/VERSION, e.g. classifier/v0003"
        )
    plan = plan_activation(args.survey, kind, version)
    if plan.missing:
        from backend.pipeline.runner import ensure

        print(f"making {', '.join(plan.missing)} of encoder {plan.versions['encoder']} first")
        ensure(args.survey, plan.missing, args.scheduler,
               versions={"encoder": plan.versions["encoder"]})  # fmt: skip
    print(switch(plan))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.activate:
        return activate(args)
    registry = ModelRegistry()
    versions = registry.list(args.kind, args.survey)
    if args.json:
        print(json.dumps([{"kind": v.kind, "version": v.version, **v.meta} for v in versions]))
        return 0
    if not versions:
        print("no model versions yet; train with `python -m backend prepare --survey demo`")
        return 0
    rows = [("KIND", "VERSION", "SURVEY", "ACTIVE", "CREATED", "METRICS")]
    for v in versions:
        survey = v.meta.get("survey", "")
        active = registry.active_versions(survey).get(v.kind) == v.version if survey else False
        metrics = "  ".join(
            f"{k}={v.metrics[k]:.4g}"
            for k in KEY_METRICS
            if isinstance(v.metrics.get(k), int | float)
        )
        rows.append((v.kind, v.version, survey, "*" if active else "", v.meta["created"], metrics))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0
