"""Failed-login lockout of ``LATENTSKY_AUTH=basic``: the ``login_failures`` table.

Every password check first records a failure row for the account name and one for the client
address, in one write transaction that also counts the failures already there: when an account
has ``N`` failures within the last ``S`` seconds (``LATENTSKY_LOGIN_LOCKOUT``, default 5 per
900 s), or a client address has its own ``N`` (``LATENTSKY_LOGIN_CLIENT_LOCKOUT``, default 20 per
900 s), the attempt is refused before the password is looked at (:class:`LoginLocked`), and
nothing is recorded for it. A right password then deletes the account's failures (a success
resets it) and the attempt's own client row; a wrong one leaves both rows as the failure.

Recording before checking keeps the bound under concurrency: parallel attempts (several server
processes, one database) each reserve their row under the lock, so no more than ``N`` passwords
per window are ever checked for one account. The rows live in the shared database, so the lockout
holds across restarts and processes. A refusal lasts until the oldest of the ``N`` latest
failures leaves the window. Rows older than the longest window are pruned on each attempt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.config import login_client_lockout, login_lockout
from backend.db import MAX_TEXT, engine_for, metadata, write_transaction
from backend.errors import UserError

ACCOUNT, CLIENT = "account", "client"
LOCK_KEY = "login"  # one advisory lock (PostgreSQL) for every login's bookkeeping

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),  # "account" or "client"
    sa.Column("key", sa.String(MAX_TEXT), nullable=False),  # the account name or the address
    sa.Column("at", sa.Float, nullable=False),  # seconds since the epoch
    sa.Index("ix_login_failures_kind_key_at", "kind", "key", "at"),
)


class LoginLocked(UserError, PermissionError):
    """Too many failed logins: refused, even with the right password, for ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Limit:
    """``failures`` within ``window`` seconds lock the key (``failures`` 0: no limit)."""

    failures: int
    window: float


@dataclass(frozen=True)
class Attempt:
    """One password check in flight: the failure rows it reserved."""

    account: str | None
    row_ids: tuple[int, ...]


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class LoginThrottle:
    """Counts failed logins per account and per client address in the database."""

    def __init__(
        self,
        engine: Engine | None = None,
        account_limit: Limit | None = None,
        client_limit: Limit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine or engine_for()
        self.limits = {
            ACCOUNT: account_limit or Limit(*login_lockout()),
            CLIENT: client_limit or Limit(*login_client_lockout()),
        }
        self.clock = clock

    def begin(self, account: str | None, client: str | None) -> Attempt:
        """Reserve a failure for ``account`` (a valid name, or None) and ``client`` (an address,
        or None); :class:`LoginLocked` when either is locked out (nothing reserved then)."""
        keys = [(ACCOUNT, account), (CLIENT, client)]
        keys = [(kind, key[:MAX_TEXT]) for kind, key in keys if key and self.limits[kind].failures]
        now = self.clock()
        longest = max((limit.window for limit in self.limits.values()), default=0.0)
        with write_transaction(self.engine, LOCK_KEY) as conn:
            conn.execute(login_failures.delete().where(login_failures.c.at < now - longest))
            for kind, key in keys:
                self._check(conn, kind, key, now)
            ids = [
                conn.execute(
                    login_failures.insert().values(kind=kind, key=key, at=now)
                ).inserted_primary_key[0]
                for kind, key in keys
            ]
        return Attempt(account if (ACCOUNT, account) in keys else None, tuple(ids))

    def _check(self, conn: sa.Connection, kind: str, key: str, now: float) -> None:
        limit = self.limits[kind]
        recent = (
            conn.execute(
                sa.select(login_failures.c.at)
                .where(
                    login_failures.c.kind == kind,
                    login_failures.c.key == key,
                    login_failures.c.at > now - limit.window,
                )
                .order_by(login_failures.c.at.desc())
                .limit(limit.failures)
            )
            .scalars()
            .all()
        )
        if len(recent) < limit.failures:
            return
        retry_after = max(1.0, recent[-1] + limit.window - now)
        who = "this account" if kind == ACCOUNT else "this address"
        raise LoginLocked(
            f"Too many failed logins for {who} ({limit.failures} within "
            f"{_minutes(limit.window)}): try again in {_minutes(retry_after)}.",
            retry_after,
        )

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: forget the account's failures and this attempt's rows."""
        where = login_failures.c.id.in_(attempt.row_ids)
        if attempt.account is not None:
            where = sa.or_(
                where,
                sa.and_(login_failures.c.kind == ACCOUNT, login_failures.c.key == attempt.account),
            )
        with write_transaction(self.engine, LOCK_KEY) as conn:
            conn.execute(login_failures.delete().where(where))

    def failures(self, kind: str, key: str) -> int:
        """Failures recorded for ``key`` (``"account"`` or ``"client"``) within its window."""
        since = self.clock() - self.limits[kind].window
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(login_failures)
                .where(
                    login_failures.c.kind == kind,
                    login_failures.c.key == key,
                    login_failures.c.at > since,
                )
            ).scalar_one()
