"""``python -m backend ood --survey S [--encoder vN] [--json F]``: how far a survey lies from
what its encoder learnt from (out-of-distribution score per object, survey summary, verdict).

Makes the ``ood`` product through the pipeline when it is missing or outdated, then prints the
summary: median score, the reference's median and 99th percentile, the fraction of objects
beyond it and the verdict ("like the training data", "partly unlike", "unlike").
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ood", help="out-of-distribution scores of a survey against its encoder's training data"
    )
    p.add_argument("--survey", help="survey name")
    p.add_argument("--encoder", help="encoder version (default: the survey's active one)")
    p.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    p.add_argument(
        "--general-reference", type=Path, metavar="CORPUS",
        help="instead: store the shipped general encoder's reference from a corpus folder made "
        "by `pretrain corpus` (sampled in the mix of presets of its card)",
    )  # fmt: skip
    p.add_argument("--general", default="general-v1", help="general encoder name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.atomic import atomic_write_json
    from backend.errors import UserError
    from backend.latent.ood_product import NO_REFERENCE, read_ood
    from backend.pipeline.planner import resolve_versions
    from backend.pipeline.runner import ensure

    if args.general_reference:
        from backend.latent.ood_product import general_reference

        path = general_reference(args.general_reference, args.general)
        print(f"wrote {path}")
        return 0
    if not args.survey:
        raise UserError("ood needs --survey (or --general-reference CORPUS)")
    versions = {"encoder": args.encoder} if args.encoder else None
    outcome = ensure(args.survey, ("ood",), versions=versions)
    encoder = args.encoder or resolve_versions(args.survey).encoder
    found = read_ood(args.survey, encoder) if encoder else None
    if found is None:  # not made: the plan says why (no encoder, no reference)
        raise UserError("; ".join(outcome.plan.notes) or f"no ood product for {args.survey}")
    scores, summary = found
    print(f"survey {args.survey}, encoder {encoder}: {summary['verdict']}")
    print(f"  reference: {summary['reference']} (k = {summary['k']})")
    print(f"  median OOD score {summary['median']:.4f} (reference median "
          f"{summary['reference_median']:.4f}, 99th percentile {summary['reference_p99']:.4f})")  # fmt: skip
    print(f"  {summary['fraction_beyond_p99']:.1%} of {summary['n']} objects beyond the "
          "reference's 99th percentile")  # fmt: skip
    top = scores.nlargest(5, "ood_score")
    print("  least like the training data: " + ", ".join(
        f"{i} ({s:.3f})" for i, s in zip(top["object_id"], top["ood_score"], strict=True)))  # fmt: skip
    if summary.get("note"):
        print(f"  note: {summary['note']}")
    if summary["verdict"] not in ("like the training data", NO_REFERENCE):
        print(f"  fine-tune the encoder on this survey: python -m backend submit finetune "
              f"--survey {args.survey} (or Models & jobs in the app)")  # fmt: skip
    if args.json:
        atomic_write_json(args.json, summary)
        print(f"  wrote {args.json}")
    return 0
