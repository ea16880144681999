"""Accounts of ``LATENTSKY_AUTH=basic`` (and the roles of ``oauth`` accounts): the ``users`` table.

One row per account: ``name`` (the login, validated like every user name), ``password_hash``
(argon2id, by argon2-cffi; NULL for an OAuth account, which has no password here), ``role`` and
``created``. The table lives in the shared database (:func:`backend.db.engine_for`,
migration ``0003``); passwords never reach it, only their hashes. :meth:`UserStore.login` is the
login form's check: :meth:`UserStore.verify` behind the failed-login lockout
(:mod:`backend.auth.lockout`, migration ``0004``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from backend.auth.lockout import LoginThrottle
from backend.auth.roles import Account, RoleError, check_role
from backend.db import engine_for, metadata
from backend.errors import UserError
from backend.usertext import UserNameError, validate_user_name

MAX_TEXT = 256
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(MAX_TEXT), primary_key=True),
    sa.Column("password_hash", sa.String(MAX_TEXT), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


@cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so a wrong name costs as long as a wrong
    password. Made on first use (0.2 s and 64 MiB of argon2id: not at import time)."""
    return _hasher.hash("no such user: constant-time refusal")


class AccountError(UserError, ValueError):
    """An account that cannot be added or changed (the message says why)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created: datetime
    has_password: bool


def check_password(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return password


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise AccountError(f"user name must be text, got {name!r}")
    try:
        return validate_user_name(name)
    except UserNameError as exc:
        raise AccountError(str(exc)) from None


def _role(role: object) -> str:
    try:
        return check_role(role)
    except RoleError as exc:
        raise AccountError(str(exc)) from None


class UserStore:
    """Accounts in the database of ``DATABASE_URL`` (or ``engine``)."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or engine_for()

    def add(self, name: str, role: str, password: str | None = None) -> User:
        """A new account; ``password`` None makes one that can only log in through OAuth."""
        name, role = _name(name), _role(role)
        digest = _hasher.hash(check_password(password)) if password is not None else None
        row = {"name": name, "password_hash": digest, "role": role, "created": datetime.now(UTC)}
        try:
            with self.engine.begin() as conn:
                conn.execute(users.insert().values(**row))
        except sa.exc.IntegrityError:
            raise AccountError(f"user {name!r} exists already (set-role changes a role)") from None
        return User(name, role, row["created"], digest is not None)

    def list(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.name)).all()
        return [User(r.name, r.role, r.created, r.password_hash is not None) for r in rows]

    def get(self, name: str) -> User | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(users).where(users.c.name == name)).first()
        return None if r is None else User(r.name, r.role, r.created, r.password_hash is not None)

    def role_of(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(users.c.role).where(users.c.name == name)).scalar()

    def set_role(self, name: str, role: str) -> None:
        name, role = _name(name), _role(role)
        with self.engine.begin() as conn:
            done = conn.execute(users.update().where(users.c.name == name).values(role=role))
        if done.rowcount == 0:
            raise AccountError(f"no user {name!r} (python -m backend users list)")

    def set_password(self, name: str, password: str) -> None:
        name, digest = _name(name), _hasher.hash(check_password(password))
        with self.engine.begin() as conn:
            done = conn.execute(
                users.update().where(users.c.name == name).values(password_hash=digest)
            )
        if done.rowcount == 0:
            raise AccountError(f"no user {name!r} (python -m backend users list)")

    def remove(self, name: str) -> None:
        name = _name(name)
        with self.engine.begin() as conn:
            done = conn.execute(users.delete().where(users.c.name == name))
        if done.rowcount == 0:
            raise AccountError(f"no user {name!r} (python -m backend users list)")

    def verify(self, name: str, password: str) -> Account | None:
        """The account when ``password`` is ``name``'s; None otherwise (unknown name, wrong or
        no password). Rehashes a hash made with older parameters."""
        try:
            name = _name(name)
        except AccountError:
            return None
        dummy = _dummy_hash()  # before the lookup: the first call costs the same either way
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).first()
        digest = row.password_hash if row is not None and row.password_hash else dummy
        try:
            _hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row.password_hash:
            return None
        if _hasher.check_needs_rehash(digest):
            self.set_password(name, password)
        return Account(name, row.role)

    def login(
        self,
        name: str,
        password: str,
        client: str | None = None,
        throttle: LoginThrottle | None = None,
    ) -> Account | None:
        """:meth:`verify` for a login form: refused with
        :class:`~backend.auth.lockout.LoginLocked` (even with the right password) while ``name``
        or the ``client`` address has too many recent failures; a success resets ``name``'s."""
        throttle = throttle or LoginThrottle(self.engine)
        try:
            key: str | None = _name(name)
        except AccountError:
            key = None  # no such account can exist: only the address is counted
        attempt = throttle.begin(key, client)
        account = self.verify(name, password)
        if account is not None:
            throttle.succeeded(attempt)
        return account
