"""Accounts: ``python -m backend users add|list|set-role|remove``, argon2 hashes only in the
database, password checks, and the ``users`` table made by migration 0003."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.auth.users import UserStore, users
from backend.cli import main
from backend.db import engine_for

pytestmark = pytest.mark.both_databases


def add(name: str, role: str, password: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["users", "add", name, "--role", role, "--password-stdin"])


def test_add_list_set_role_remove(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add("ana", "labeller", "correct horse battery", monkeypatch) == 0
    assert add("bob", "curator", "another long secret", monkeypatch) == 0
    assert main(["users", "add", "oli", "--role", "viewer", "--oauth-only"]) == 0
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        ["ana", "labeller", "password"], ["bob", "curator", "password"], ["oli", "viewer", "oauth"]
    ]  # fmt: skip
    assert main(["users", "set-role", "ana", "admin"]) == 0
    assert UserStore().role_of("ana") == "admin"
    assert main(["users", "remove", "bob"]) == 0
    assert [u.name for u in UserStore().list()] == ["ana", "oli"]


def test_passwords_are_stored_as_argon2_hashes_only(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert add("ana", "labeller", "correct horse battery", monkeypatch) == 0
    with engine_for().connect() as conn:
        stored = conn.execute(sa.select(users)).one()
    assert stored.password_hash.startswith("$argon2id$")
    with engine_for().connect() as conn:  # nowhere in any column of any row
        dump = repr(conn.execute(sa.select(users)).all())
    assert "correct horse battery" not in dump
    store = UserStore()
    assert store.verify("ana", "correct horse battery").role == "labeller"
    assert store.verify("ana", "correct horse batterY") is None
    assert store.verify("nobody", "correct horse battery") is None
    assert main(["users", "add", "oli", "--role", "viewer", "--oauth-only"]) == 0
    assert store.verify("oli", "") is None  # an OAuth account has no password to guess


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["users", "add", "ana", "--role", "labeller", "--password-stdin"], "short\n", "8-1024"),
        (["users", "add", "ana", "--role", "labeller"], "", "--password-stdin"),
        (["users", "add", "a\u200bna", "--role", "viewer", "--oauth-only"], "", "zero-width"),
        (["users", "set-role", "nobody", "admin"], "", "no user 'nobody'"),
        (["users", "remove", "nobody"], "", "no user 'nobody'"),
    ],
)
def test_bad_requests_are_one_error_line(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert UserStore().list() == []


def test_a_name_is_added_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert add("ana", "labeller", "correct horse battery", monkeypatch) == 0
    assert add("ana", "admin", "correct horse battery", monkeypatch) == 2
    assert UserStore().role_of("ana") == "labeller"
