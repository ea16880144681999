"""Failed-login lockout of ``LATENTSKY_AUTH=basic`` (``backend.auth.lockout``): repeated wrong
passwords lock an account (and a client address) for a cool-off, even against the right password;
a success resets; the count lives in the database, so it holds across processes and restarts and
under concurrent attempts. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from argon2 import PasswordHasher

import backend.auth.users
from backend.auth.lockout import LoginLocked, LoginThrottle
from backend.auth.roles import Account
from backend.auth.users import UserStore
from backend.config import ConfigError, get_settings, login_lockout
from backend.db import dispose_engine, engine_for

pytestmark = pytest.mark.both_databases

RIGHT, WRONG = "correct horse battery", "correct horse batterY"
REPO = Path(__file__).resolve().parents[2]


class Clock:
    """A settable clock for the throttle (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(home: Path, monkeypatch: pytest.MonkeyPatch) -> UserStore:
    monkeypatch.setenv("LATENTSKY_LOGIN_LOCKOUT", "5/900")
    monkeypatch.setenv("LATENTSKY_LOGIN_CLIENT_LOCKOUT", "8/600")
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # fast tests
    monkeypatch.setattr(backend.auth.users, "_hasher", cheap)
    monkeypatch.setattr(backend.auth.users, "_dummy_hash", lambda: cheap.hash("nobody"))
    store = UserStore()
    store.add("ana", "labeller", RIGHT)
    store.add("bob", "labeller", RIGHT)
    return store


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(store: UserStore) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        assert store.login("ana", WRONG, "10.0.0.1", throttle) is None
        clock.now += 10
    for client in ("10.0.0.1", "10.0.0.2", None):  # the account is locked, from anywhere
        with pytest.raises(LoginLocked, match="Too many failed logins for this account") as hit:
            store.login("ana", RIGHT, client, throttle)
    assert "try again in 15 minutes" in str(hit.value)
    assert hit.value.retry_after == pytest.approx(850)  # until the first failure ages out
    assert store.login("bob", RIGHT, "10.0.0.1", throttle).name == "bob"  # others unaffected
    clock.now += 900 - 50  # the first failure ages out: one more try
    assert store.login("ana", RIGHT, "10.0.0.1", throttle).name == "ana"


def test_a_success_resets_the_account_not_the_address(store: UserStore) -> None:
    throttle = LoginThrottle(clock=Clock())
    for _ in range(4):
        assert store.login("ana", WRONG, "10.0.0.1", throttle) is None
    assert store.login("ana", RIGHT, "10.0.0.1", throttle).name == "ana"
    assert throttle.failures("account", "ana") == 0
    for _ in range(4):
        assert store.login("ana", WRONG, "10.0.0.1", throttle) is None
    assert throttle.failures("account", "ana") == 4  # 8 in a row would have locked it
    assert throttle.failures("client", "10.0.0.1") == 8  # a guesser's one good login resets
    with pytest.raises(LoginLocked, match="for this address"):  # no address
        store.login("ana", RIGHT, "10.0.0.1", throttle)
    assert store.login("ana", RIGHT, "10.0.0.2", throttle).name == "ana"


def test_one_address_guessing_many_accounts_is_locked(store: UserStore) -> None:
    """Password spraying: 8 failures from one address over several names, a few each."""
    throttle = LoginThrottle(clock=Clock())
    for name in ["ana", "bob", "cy", "dee"] * 2:
        assert store.login(name, WRONG, "10.6.6.6", throttle) is None
    with pytest.raises(LoginLocked, match="for this address"):
        store.login("bob", RIGHT, "10.6.6.6", throttle)
    assert store.login("bob", RIGHT, "10.0.0.9", throttle).name == "bob"
    assert throttle.failures("client", "10.6.6.6") == 8  # the refusal recorded nothing


def test_the_lockout_holds_across_processes_and_restarts(
    store: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server process (sharing the database) made the failures; this one, restarted
    with a fresh engine, refuses the right password."""
    script = (
        "from backend.auth.users import UserStore\n"
        "s = UserStore()\n"
        f"print([s.login('ana', {WRONG!r}, '10.0.0.1') for _ in range(5)])\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[None, None, None, None, None]"
    dispose_engine(get_settings().database_url)  # as a restarted server: a new engine
    with pytest.raises(LoginLocked):
        UserStore(engine_for()).login("ana", RIGHT, "10.0.0.1")


def test_concurrent_attempts_check_no_more_than_the_limit(
    store: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve wrong passwords at once: five are checked, seven refused before their check."""
    checked: list[str] = []
    verify = UserStore.verify

    def counting(self: UserStore, name: str, password: str) -> Account | None:
        checked.append(name)
        return verify(self, name, password)

    monkeypatch.setattr(UserStore, "verify", counting)

    def attempt(i: int) -> str:
        try:
            return "refused" if store.login("ana", WRONG, f"10.0.1.{i}") is None else "in"
        except LoginLocked:
            return "locked"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(attempt, range(12)))
    assert sorted(outcomes) == ["locked"] * 7 + ["refused"] * 5
    assert len(checked) == 5


def test_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSKY_LOGIN_LOCKOUT", "0")
    assert login_lockout()[0] == 0
    monkeypatch.setenv("LATENTSKY_LOGIN_LOCKOUT", "five")
    with pytest.raises(ConfigError, match="LATENTSKY_LOGIN_LOCKOUT='five'"):
        login_lockout()


def test_no_limit_when_turned_off(store: UserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSKY_LOGIN_LOCKOUT", "0")
    monkeypatch.setenv("LATENTSKY_LOGIN_CLIENT_LOCKOUT", "0")
    for _ in range(7):
        assert store.login("ana", WRONG, "10.0.0.1") is None
    assert store.login("ana", RIGHT, "10.0.0.1").name == "ana"
