"""R1: labels over HTTP survive a killed web server and many concurrent labellers; bad labels
are refused with a clear message and change nothing.

Each test serves the real app (``python -m panel serve app/main.py --plugins app.routes``) on a
free loopback port, against a temporary data root holding a tiny survey and a temporary SQLite
database, and labels through the JSON API (``app/api.py``). A label counts as acknowledged when
its POST answered 201 with an event id.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from backend.labels import LabelStore, load_schema
from backend.survey import Survey
from tests.served_app import HTTP_TIMEOUT, Server, stored_labels

SURVEY = "tiny"
CLIENTS = 20
KILL_AFTER = 300  # acknowledged labels before the server is killed


@pytest.fixture
def serve(home: Path, tiny_survey: Survey, tmp_path: Path) -> Iterator[callable]:
    """Start servers on the tiny survey and one database (the test's PostgreSQL database when
    parametrised so, else a SQLite file); all are stopped at the end."""
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'labels.db'}"
    servers: list[Server] = []

    def start(*args: str) -> Server:
        servers.append(Server(home, database_url, tmp_path / "serve.log", args, survey=SURVEY))
        return servers[-1]

    start.database_url = database_url
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def ids(tiny_survey: Survey) -> list[str]:
    return tiny_survey.catalog["object_id"].astype(str).tolist()


CLASSES = load_schema(SURVEY).names


def _burst(
    server: Server, ids: list[str], per_client: int, *, enough: threading.Event | None = None
) -> tuple[list[tuple], dict[int, str], list[tuple[int, str]], list[threading.Thread]]:
    """Start ``CLIENTS`` threads, each POSTing ``per_client`` labels (one per object) as its own
    user. Returns (acknowledged (user, object_id, value, id), per-client connection errors,
    unexpected answers, the threads)."""
    acked: list[tuple] = []
    cut: dict[int, str] = {}
    unexpected: list[tuple[int, str]] = []

    def client(k: int) -> None:
        user = f"labeller-{k:02d}"
        with requests.Session() as session:
            for i in range(per_client):
                oid, value = ids[(i + 7 * k) % len(ids)], CLASSES[(i + k) % len(CLASSES)]
                body = {"survey": SURVEY, "object_id": oid, "value": value, "user": user}
                try:
                    r = server.post("/api/labels", body, session)
                    answer = r.json() if r.status_code == 201 else None
                except (requests.RequestException, ValueError) as exc:
                    cut[k] = type(exc).__name__  # no acknowledgement
                    return
                if answer is None:
                    unexpected.append((r.status_code, r.text))
                    return
                acked.append((user, oid, value, int(answer["id"])))
                if enough is not None and len(acked) >= KILL_AFTER:
                    enough.set()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    return acked, cut, unexpected, threads


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "a client thread hung"


@contextlib.contextmanager
def _write_lock_held(database_url: str) -> Iterator[None]:
    """Another process holding the label table's write lock: SQLite's BEGIN IMMEDIATE, or a
    PostgreSQL transaction holding ``LOCK TABLE label_events IN EXCLUSIVE MODE``."""
    if database_url.startswith("sqlite:///"):
        blocker = sqlite3.connect(
            database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=60
        )
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        return
    import sqlalchemy as sa

    LabelStore(database_url)  # the tables exist (migrated) before they are locked
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("LOCK TABLE label_events IN EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def _stored(database_url: str) -> set[tuple]:
    return set(stored_labels(database_url, SURVEY))


@pytest.mark.both_databases
def test_acknowledged_labels_survive_kill_9_mid_burst(serve, ids: list[str], database: str) -> None:
    server = serve()
    enough = threading.Event()
    started = time.monotonic()
    acked, cut, unexpected, threads = _burst(server, ids, per_client=len(ids), enough=enough)
    assert enough.wait(180), f"only {len(acked)} labels acknowledged; unexpected: {unexpected[:3]}"
    server.kill9()
    killed_after = time.monotonic() - started
    _join(threads)
    n_acked = len(acked)
    print(f"\n{n_acked} labels acknowledged by {CLIENTS} clients before kill -9 "
          f"({killed_after:.1f} s after the burst began)")  # fmt: skip
    assert not unexpected, unexpected[:3]
    assert n_acked >= KILL_AFTER
    assert cut, "the kill did not interrupt the burst"  # clients were still sending
    assert n_acked < CLIENTS * len(ids)
    assert len({a[3] for a in acked}) == n_acked, "two acknowledgements share an event id"

    # every acknowledged label is in the database, with its id, user, object and class
    stored = _stored(serve.database_url)
    lost = set(acked) - stored
    assert not lost, f"{len(lost)} acknowledged labels lost, e.g. {sorted(lost)[:3]}"
    # at most one request per client was in flight: committed but never acknowledged
    unacknowledged = len(stored - set(acked))
    print(f"{len(stored)} stored after the kill, {unacknowledged} of them never acknowledged")
    assert unacknowledged <= CLIENTS

    # a restarted server serves them (each user labelled each object at most once) ...
    again = serve()
    current = {(x["user"], x["object_id"], x["value"], x["id"]) for x in again.current()["labels"]}
    assert set(acked) <= current
    assert current == stored
    # ... and accepts labels again
    body = {"survey": SURVEY, "object_id": ids[0], "value": CLASSES[0], "user": "after-restart"}
    r = again.post("/api/labels", body)
    assert r.status_code == 201, r.text
    assert again.current(user="after-restart")["labels"][0]["id"] == r.json()["id"]


@pytest.mark.both_databases
def test_twenty_concurrent_labellers_lose_no_write(serve, ids: list[str], database: str) -> None:
    """Writers queue on the database's lock (SQLite's busy timeout, PostgreSQL's table lock)
    instead of failing: even while another process holds the write lock, no POST fails, and
    every label is stored exactly once."""
    per_client = 15
    server = serve()
    direct_errors: list[str] = []

    def direct_writer() -> None:  # a second process-level writer (the CLI, a worker...)
        store = LabelStore(serve.database_url)
        for i in range(30):
            try:
                store.add(SURVEY, ids[i], CLASSES[i % len(CLASSES)], user="direct", source="cli")
            except Exception as exc:
                direct_errors.append(repr(exc))

    with _write_lock_held(serve.database_url):  # held while the burst starts
        acked, cut, unexpected, threads = _burst(server, ids, per_client)
        writer = threading.Thread(target=direct_writer, daemon=True)
        writer.start()
        # let the server's writers reach the lock (the outcome does not depend on how long)
        time.sleep(1.0)
        assert not acked and not unexpected, "a label was answered while the database was locked"
    _join([*threads, writer])
    assert not unexpected, f"{len(unexpected)} POSTs failed, e.g. {unexpected[:3]}"
    assert not cut, f"connections failed: {cut}"
    assert not direct_errors, direct_errors[:3]
    assert len(acked) == CLIENTS * per_client
    assert len({a[3] for a in acked}) == len(acked)

    stored = _stored(serve.database_url)
    assert set(acked) <= stored
    assert len(stored) == CLIENTS * per_client + 30
    answer = server.current()
    assert answer["count"] == CLIENTS * per_client + 30
    for k in range(CLIENTS):
        assert server.current(user=f"labeller-{k:02d}")["count"] == per_client


BAD_POSTS = [
    # (path, body, HTTP status, field, words in the error)
    ("/api/labels", {"object_id": "ID0", "value": "blob", "user": "u"}, 400, "value",
     "unknown class 'blob'"),
    ("/api/labels", {"object_id": "tiny-9999", "value": "spiral", "user": "u"}, 400, "object_id",
     "unknown object id 'tiny-9999'"),
    ("/api/labels", {"survey": "no_such_survey", "object_id": "ID0", "value": "spiral",
     "user": "u"}, 404, "survey", "unknown survey 'no_such_survey'"),
    ("/api/labels", {"survey": "../tiny", "object_id": "ID0", "value": "spiral", "user": "u"},
     400, "survey", "invalid survey name"),
    ("/api/labels", {"survey": "tiny/../../etc", "object_id": "ID0", "value": "spiral",
     "user": "u"}, 400, "survey", "invalid survey name"),
    ("/api/labels", {"survey": ".hidden", "object_id": "ID0", "value": "spiral", "user": "u"},
     400, "survey", "invalid survey name"),
    ("/api/labels", {"object_id": "ID0", "value": "spiral"}, 400, "user", "missing field 'user'"),
    ("/api/labels", {"object_id": "ID0", "value": "spiral", "user": "   "}, 400, "user",
     "user must be 1-256 characters"),
    ("/api/labels", {"object_id": "ID0", "user": "u"}, 400, "value", "missing field 'value'"),
    ("/api/labels", {"value": "spiral", "user": "u"}, 400, "object_id",
     "missing field 'object_id'"),
    ("/api/labels", {"object_id": ["ID0"], "value": "spiral", "user": "u"}, 400, "object_id",
     "object_id must be a string or an integer"),
    ("/api/labels", {"object_id": "ID0", "value": "spiral", "user": "u", "task": "zoo"}, 400,
     "task", "unknown task 'zoo'"),
    ("/api/labels", {"object_id": "ID0", "value": "spiral", "user": "u", "colour": "red"}, 400,
     "colour", "unknown field 'colour'"),
    ("/api/labels/undo", {"survey": "no_such_survey", "user": "u"}, 404, "survey",
     "unknown survey"),
    ("/api/labels/undo", {}, 400, "user", "missing field 'user'"),
]  # fmt: skip


def test_bad_labels_are_refused_clearly_and_change_nothing(serve, ids: list[str]) -> None:
    server = serve()
    good = {"survey": SURVEY, "object_id": ids[0], "value": CLASSES[0], "user": "u"}
    assert server.post("/api/labels", good).status_code == 201
    before = _stored(serve.database_url)

    for path, body, status, field, words in BAD_POSTS:
        body = {"survey": SURVEY, **body}
        if "object_id" in body and body["object_id"] == "ID0":
            body["object_id"] = ids[1]
        r = server.post(path, body)
        assert (r.status_code, r.json()["field"]) == (status, field), (body, r.text)
        assert words in r.json()["error"], (body, r.text)

    raw = [  # (body bytes, content type, status, words)
        (b'{"survey": "tiny", "object_id": ', "application/json", 400, "malformed JSON"),
        (b"\xff\xfe not utf-8", "application/json", 400, "malformed JSON"),
        (b'["tiny", "ID0", "spiral"]', "application/json", 400, "must be an object"),
        (b"", "application/json", 400, "malformed JSON"),
        (b"survey=tiny&object_id=x&value=spiral&user=u", "application/x-www-form-urlencoded",
         415, "Content-Type: application/json"),
    ]  # fmt: skip
    for data, kind, status, words in raw:
        r = requests.post(
            f"{server.url}/api/labels", data=data, headers={"Content-Type": kind},
            timeout=HTTP_TIMEOUT,
        )  # fmt: skip
        assert r.status_code == status and words in r.json()["error"], (data, r.text)

    for params, status, words in [
        ({"survey": "../etc"}, 400, "invalid survey name"),
        ({"survey": "no_such_survey"}, 404, "unknown survey"),
        ({"survey": ""}, 400, "missing query parameter 'survey'"),
    ]:
        r = requests.get(f"{server.url}/api/labels", params=params, timeout=HTTP_TIMEOUT)
        assert r.status_code == status and words in r.json()["error"], (params, r.text)

    assert _stored(serve.database_url) == before
    assert len(LabelStore(serve.database_url).events(SURVEY)) == 1  # no undo event either
    assert server.current()["count"] == 1


def test_with_panel_login_labels_are_stored_under_the_logged_in_user(serve, ids: list[str]) -> None:
    server = serve("--basic-auth", "pw-for-tests", "--cookie-secret", "cookie-secret-for-tests")
    body = {"survey": SURVEY, "object_id": ids[2], "value": CLASSES[1], "user": "mallory"}
    r = server.post("/api/labels", body)
    assert r.status_code == 401 and "log in" in r.json()["error"]
    with requests.Session() as session:
        login = session.post(
            f"{server.url}/login", data={"username": "alice", "password": "pw-for-tests"},
            allow_redirects=False, timeout=HTTP_TIMEOUT,
        )  # fmt: skip
        assert login.status_code == 302, login.text
        r = server.post("/api/labels", body, session)
        assert r.status_code == 201 and r.json()["user"] == "alice", r.text
    stored = _stored(serve.database_url)
    assert stored == {("alice", ids[2], CLASSES[1], r.json()["id"])}
