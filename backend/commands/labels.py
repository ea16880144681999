"""``python -m backend labels ...``: import, export, agreement and schemas of human labels.

labels import FILE --survey S --user NAME        one label per row (object_id, value)
labels import-votes FILE --survey S --source galaxyzoo [--map CLASS=COLUMN,...]
                                                 vote fractions as soft labels
labels export --survey S --out FILE [--what current|events|consensus|votes]
labels agreement --survey S [--json]             Krippendorff's alpha, Cohen's kappa
labels schema --survey S [--classes a,b,c]       show (or set) the survey's classes
              [--anomalies a,b]                  classes whose objects are anomalies
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily: `--help` stays fast
    from backend.labels import LabelStore
    from backend.labels.schema import LabelSchema

WHAT = ("current", "events", "consensus", "votes")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="import, export and compare human labels")
    cmds = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)

    imp = cmds.add_parser("import", help="import labels (CSV, parquet, FITS/VOTable)")
    imp.add_argument("file")
    imp.add_argument("--survey", required=True)
    imp.add_argument("--user", help="who gave the labels (or --user-column)")
    imp.add_argument("--user-column", help="a column naming the labeller of each row")
    imp.add_argument("--id-column", default="object_id")
    imp.add_argument("--value-column", default="value")
    imp.add_argument("--task", default="class")
    imp.set_defaults(func=run_import)

    votes = cmds.add_parser(
        "import-votes", help="import vote fractions per class (e.g. Galaxy Zoo) as soft labels"
    )
    votes.add_argument("file")
    votes.add_argument("--survey", required=True)
    votes.add_argument("--source", default="galaxyzoo", help="name of the vote set")
    votes.add_argument(
        "--map", help="CLASS=COLUMN pairs, comma separated (default: columns named as classes)"
    )
    votes.add_argument("--id-column", default="object_id")
    votes.add_argument(
        "--match-radius", type=float, help="join by sky position within ARCSEC instead of by id"
    )
    votes.add_argument("--votes-column", help="column with the number of votes per object")
    votes.add_argument("--task", default="class")
    votes.set_defaults(func=run_import_votes)

    exp = cmds.add_parser("export", help="export labels (.csv, .parquet, .fits, .vot)")
    exp.add_argument("--survey", required=True)
    exp.add_argument("--out", required=True)
    exp.add_argument("--what", choices=WHAT, default="current")
    exp.add_argument("--task", default="class")
    exp.set_defaults(func=run_export)

    agree = cmds.add_parser("agreement", help="agreement between labellers")
    agree.add_argument("--survey", required=True)
    agree.add_argument("--task", default="class")
    agree.add_argument("--json", action="store_true")
    agree.set_defaults(func=run_agreement)

    schema = cmds.add_parser("schema", help="show or set a survey's label classes")
    schema.add_argument("--survey", required=True)
    schema.add_argument("--classes", help="comma-separated class names to set (keys 1, 2, ...)")
    schema.add_argument(
        "--anomalies",
        help="comma-separated classes whose labelled objects are anomalies: they choose how "
        "`score` combines its scorers ('' declares none)",
    )
    schema.set_defaults(func=run_schema)


def _store() -> LabelStore:
    from backend.labels import LabelStore

    return LabelStore()


def run_import(args: argparse.Namespace) -> int:
    from backend.labels import LabelError, load_schema
    from backend.labels.files import read_hard_labels

    if bool(args.user) == bool(args.user_column):
        raise LabelError("give either --user NAME or --user-column COLUMN")
    rows = read_hard_labels(
        args.file, id_column=args.id_column, value_column=args.value_column,
        user_column=args.user_column,
    )  # fmt: skip
    schema = load_schema(args.survey)
    unknown = sorted(set(rows["value"]) - set(schema.names))
    if unknown:
        raise LabelError(
            f"label file {args.file}: unknown class(es) {unknown[:10]} for survey {args.survey} "
            f"(classes: {', '.join(schema.names)}); nothing imported"
        )
    rows["survey"] = args.survey
    total = _store().add_many(rows, user=args.user, task=args.task, source="import")
    users = rows["user"].nunique() if "user" in rows else 1
    print(f"imported {total} label(s) for {args.survey} from {args.file} ({users} user(s))")
    return 0


def run_import_votes(args: argparse.Namespace) -> int:
    from backend.labels import load_schema
    from backend.labels.files import parse_mapping, read_vote_fractions
    from backend.survey import Survey

    survey = Survey.open(args.survey)
    schema = load_schema(args.survey)
    found = read_vote_fractions(
        args.file, survey, schema.names, mapping=parse_mapping(args.map) or None,
        id_column=args.id_column, match_radius=args.match_radius,
        votes_column=args.votes_column,
    )  # fmt: skip
    n = _store().import_votes(
        args.survey, found.fractions, source=args.source, task=args.task,
        n_votes=found.n_votes, where=f"vote file {args.file}",
    )  # fmt: skip
    print(
        f"imported vote fractions of {n} object(s) for {args.survey} from {args.file} "
        f"(source {args.source!r}; {found.rows_in_file} rows in the file, {found.matched} matched)"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from backend.labels.files import write_frame
    from backend.survey import Survey

    Survey.open(args.survey)  # a clear error for an unknown survey
    store = _store()
    frame = {
        "current": lambda: store.current(args.survey, task=args.task),
        "events": lambda: store.events(args.survey, task=args.task),
        "consensus": lambda: store.consensus(args.survey, task=args.task),
        "votes": lambda: store.soft_labels(args.survey, task=args.task),
    }[args.what]()
    path = write_frame(frame, args.out)
    print(f"wrote {len(frame)} row(s) ({args.what}) to {path}")
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    from backend.labels.agreement import report_text
    from backend.survey import Survey

    Survey.open(args.survey)
    report = _store().agreement(args.survey, task=args.task)
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from backend.labels import load_schema
    from backend.labels.schema import make_schema, save_schema
    from backend.survey import Survey

    Survey.open(args.survey)
    if args.classes:
        path = save_schema(args.survey, make_schema(args.classes.split(",")))
        print(f"saved {path}")
    if args.anomalies is not None:
        path = save_schema(args.survey, with_anomalies(load_schema(args.survey), args.anomalies))
        print(f"saved {path}")
    schema = load_schema(args.survey)
    print(f"{args.survey}: task {schema.task!r} from {schema.source}")
    for c in schema.classes:
        mark = "  (anomaly)" if c.name in schema.anomalies else ""
        print(f"  [{c.key}] {c.name}  {c.colour}{mark}")
    return 0


def with_anomalies(schema: LabelSchema, names: str) -> LabelSchema:
    """``schema`` with the anomaly classes ``names`` (comma-separated; '' for none)."""
    import dataclasses

    from backend.labels.schema import SchemaError

    wanted = tuple(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
    unknown = [n for n in wanted if n not in schema.by_name]
    if unknown:
        raise SchemaError(
            f"--anomalies: {unknown[0]!r} is not a class of the schema ({', '.join(schema.names)})"
        )
    return dataclasses.replace(schema, anomalies=wanted)
