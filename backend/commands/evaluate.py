"""``python -m backend evaluate``: every encoder of a survey against baselines, plus its
classifiers, on the shared validation split; Markdown + JSON + PNG report.

    python -m backend evaluate --survey gz1 --label-column gz1_label \\
        --merge spiral_cw,spiral_acw=spiral --rare merger,dont_know

The report goes to ``$LATENTSKY_HOME/products/<survey>/evaluation/<task>/`` (``report.md``,
``report.json``, ``*.png``; the report it replaces moves to ``previous/`` there) and, with
``--out DIR``, also to ``DIR``; ``--json F`` writes the JSON to ``F`` too. The Markdown is
printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare encoders with baselines (kNN, probes, precision@10, rare retrieval, "
        "anomaly recall) and classifiers on the validation split",
        description="python -m backend evaluate: a report on every encoder version of a survey "
        "side by side with pixel-PCA and random-network baselines, and on its classifiers, "
        "measured on the survey's stored validation split.",
    )
    p.add_argument("--survey", required=True)
    p.add_argument("--label-column", required=True, help="catalog column with class names")
    p.add_argument("--task", default="class", help="validation-split task name (default: class)")
    p.add_argument(
        "--merge",
        action="append",
        default=[],
        metavar="OLD1,OLD2=NEW",
        help="merge classes before evaluating (repeat, or separate with ';')",
    )
    p.add_argument("--rare", default="", help="rare class(es), comma-separated (merged names)")
    p.add_argument(
        "--encoders",
        default=None,
        help="encoder versions, comma-separated, or 'all' (default: those trained on the "
        "survey and those with embeddings of it; missing embeddings are computed first)",
    )
    p.add_argument(
        "--baselines",
        default="pixel-pca,random-init",
        help="comma-separated baselines (pixel-pca, random-init; 'none' for none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    p.add_argument("--out", type=Path, default=None, help="also write the report into this folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def record_evaluation(args: argparse.Namespace, report: dict, baselines: list[str]) -> None:
    """The report's lineage record (:mod:`backend.pipeline.lineage`), as ``ensure`` writes it
    (its parameters are those ``ensure`` remakes it with when it is outdated)."""
    from backend.evaluation.labels import split_names
    from backend.pipeline.build import record
    from backend.pipeline.kinds import Target

    params = {
        "label_column": args.label_column, "merge": list(args.merge),
        "rare": split_names(args.rare), "baselines": baselines, "encoders": args.encoders,
        "seed": args.seed,
    }  # fmt: skip
    record(Target("evaluation", args.survey, "task", args.task), params, report.get("seconds"))


def run(args: argparse.Namespace) -> int:
    from backend.atomic import atomic_write
    from backend.evaluation.labels import EvaluationError, split_names
    from backend.evaluation.plots import figures
    from backend.evaluation.report import render_markdown, report_dir, to_json, write_report
    from backend.evaluation.runner import evaluate

    baselines = [] if args.baselines.strip() == "none" else split_names(args.baselines)
    unknown = sorted(set(baselines) - {"pixel-pca", "random-init"})
    if unknown:
        raise EvaluationError(f"unknown baselines {unknown} (pixel-pca, random-init)")
    try:
        directory = report_dir(args.survey, args.task)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    report = evaluate(
        args.survey,
        args.label_column,
        task=args.task,
        merge_specs=args.merge,
        rare=split_names(args.rare),
        encoders=args.encoders,
        baselines=baselines,
        seed=args.seed,
        progress=not args.no_progress,
    )
    pngs = figures(report)
    written = write_report(report, directory, pngs)
    record_evaluation(args, report, baselines)
    if args.out is not None:
        write_report(report, args.out, pngs, keep_previous=False)
    if args.json is not None:
        text = to_json(report)
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
    print(render_markdown(report))
    print(f"report written to {written['report.md'].parent}")
    return 0
