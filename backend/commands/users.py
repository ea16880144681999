"""``python -m backend users add|list|set-role|set-password|remove``: accounts and roles.

Accounts are rows of the ``users`` table (:mod:`backend.auth.users`); passwords are stored as
argon2id hashes only. A password comes from ``--password-stdin`` (first line of standard input)
or is asked for twice on the terminal; ``--oauth-only`` makes an account without a password
(its role applies to the OAuth login of that name).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from backend.auth.roles import ROLES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="accounts and roles of the web app (LATENTSKY_AUTH)")
    users = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = users.add_parser("add", help="add an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    how = add.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    how.add_argument(
        "--oauth-only", action="store_true", help="no password: logs in through OAuth only"
    )
    add.set_defaults(func=run_add)

    users.add_parser("list", help="accounts, roles, creation dates").set_defaults(func=run_list)

    role = users.add_parser("set-role", help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(func=run_set_role)

    password = users.add_parser("set-password", help="change an account's password")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(func=run_set_password)

    remove = users.add_parser("remove", help="remove an account (its labels stay)")
    remove.add_argument("name")
    remove.set_defaults(func=run_remove)


def _password(from_stdin: bool) -> str:
    from backend.errors import UserError

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask for the password on: give --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ; nothing was changed")
    return first


def run_add(args: argparse.Namespace) -> int:
    from backend.auth.users import UserStore, check_password

    password = None if args.oauth_only else check_password(_password(args.password_stdin))
    user = UserStore().add(args.name, args.role, password)
    print(f"added {user.name} ({user.role})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from backend.auth.users import UserStore

    accounts = UserStore().list()
    if not accounts:
        print("no users (python -m backend users add NAME --role ROLE)")
        return 0
    width = max(4, *(len(u.name) for u in accounts))
    print(f"{'name':{width}} {'role':9} {'login':8} created")
    for u in accounts:
        login = "password" if u.has_password else "oauth"
        print(f"{u.name:{width}} {u.role:9} {login:8} {u.created:%Y-%m-%d %H:%M}")
    return 0


def run_set_role(args: argparse.Namespace) -> int:
    from backend.auth.users import UserStore

    UserStore().set_role(args.name, args.role)
    print(f"{args.name} is now {args.role}")
    return 0


def run_set_password(args: argparse.Namespace) -> int:
    from backend.auth.users import UserStore

    UserStore().set_password(args.name, _password(args.password_stdin))
    print(f"password of {args.name} changed")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from backend.auth.users import UserStore

    UserStore().remove(args.name)
    print(f"removed {args.name}")
    return 0
