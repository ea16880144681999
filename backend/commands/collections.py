"""``python -m backend collections list|show|export|delete --survey S``: the survey's saved
collections (made in the web app: a selection, a search result, a top-N anomaly list).

list                          name, kind, size, owner, when, first line of the note
show NAME                     the note and every object id, in the saved order
export NAME --out FILE        catalog rows in the saved order (.csv, .fits, .vot), atomically
delete NAME                   as the operator of the data root (an admin)
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collections", help="list, show, export or delete saved collections")
    actions = p.add_subparsers(dest="action", required=True)
    for action, text in (
        ("list", "the survey's collections, newest first"),
        ("show", "a collection's note and object ids"),
        ("export", "a collection's catalog rows as CSV, FITS or VOTable"),
        ("delete", "delete a collection"),
    ):
        a = actions.add_parser(action, help=text)
        a.add_argument("--survey", required=True)
        if action != "list":
            a.add_argument("name", help="the collection's name")
        if action == "export":
            a.add_argument("--out", required=True, type=Path, help="file: .csv, .fits or .vot")
            a.add_argument("--format", choices=("csv", "fits", "votable"), default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend import collections as coll

    if args.action == "list":
        found = coll.list_collections(args.survey)
        if not found:
            print(f"no collections in survey {args.survey}")
            return 0
        print(f"{'name':24} {'kind':10} {'objects':>8} {'owner':16} {'created':17} note")
        for c in found:
            note = c.note.split("\n", 1)[0][:60]
            print(
                f"{c.name:24} {c.kind:10} {c.size:>8,} {c.owner:16} "
                f"{c.created:%Y-%m-%d %H:%M} {note}"
            )
        return 0
    if args.action == "show":
        c = coll.get(args.survey, args.name)
        print(f"{c.name} ({c.kind}, {c.size:,} objects) by {c.owner}, {c.created:%Y-%m-%d %H:%M}")
        if c.note:
            print(c.note)
        print("\n".join(c.object_ids))
        return 0
    if args.action == "export":
        from backend.latent.export import export_table
        from backend.survey import Survey

        survey = Survey.open(args.survey)
        c = coll.get(args.survey, args.name)
        path = export_table(coll.table(survey, c), args.out, args.format)
        print(f"wrote {c.size:,} objects of collection {c.name!r} to {path}")
        return 0
    from backend.auth.roles import Account

    coll.delete(args.survey, args.name, by=Account(None, "admin"), user="admin")
    print(f"deleted collection {args.name!r} of survey {args.survey}")
    return 0
