"""The JSON label API in-process (tornado, no Panel server): who a label is stored under when
authentication is on, and the SQLite settings that make concurrent writers wait, not fail."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from app.api import ROUTES
from app.labelling import label_store
from backend.db import engine_for
from backend.survey import Survey


def call(
    method: str, path: str, body: object = None, *, auth: Any = None, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """One request to a fresh app on a loopback port; ``auth`` plays Bokeh's auth provider."""

    async def go() -> HTTPResponse:
        app = Application(ROUTES)
        if auth is not None:
            app.auth_provider = auth
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        try:
            return await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}{path}", method=method, body=data, raise_error=False,
                headers={"Content-Type": "application/json"}, request_timeout=60,
            )  # fmt: skip
        finally:
            server.stop()

    response = asyncio.run(go())
    return response.code, json.loads(response.body)


def login(user: str | None) -> SimpleNamespace:
    """A provider like Panel's basic auth: a synchronous ``get_user``."""
    return SimpleNamespace(get_user=lambda handler: user, get_user_async=None)


def login_async(user: str | None) -> SimpleNamespace:
    """A provider like Panel's OAuth: an asynchronous ``get_user_async``."""

    async def get_user(handler: Any) -> str | None:
        return user

    return SimpleNamespace(get_user=None, get_user_async=get_user)


def label(**extra: Any) -> dict[str, Any]:
    return {"survey": "tiny", "object_id": "tiny-0003", "value": "merger", **extra}


def test_post_stores_a_committed_label_and_get_returns_it(tiny_survey: Survey) -> None:
    status, answer = call("POST", "/api/labels", label(user="ana"))
    assert status == 201
    assert answer == {
        "id": answer["id"], "survey": "tiny", "object_id": "tiny-0003", "value": "merger",
        "user": "ana", "task": "class",
    }  # fmt: skip
    stored = label_store().events("tiny")
    assert stored[["id", "user", "value", "source"]].values.tolist() == [
        [answer["id"], "ana", "merger", "api"]
    ]
    status, listing = call("GET", "/api/labels?survey=tiny&user=ana")
    assert status == 200 and listing["count"] == 1
    assert listing["labels"][0]["id"] == answer["id"]
    assert listing["labels"][0]["created"].endswith("+00:00")
    status, undone = call("POST", "/api/labels/undo", {"survey": "tiny", "user": "ana"})
    assert status == 200 and undone["undone"]["id"] == answer["id"]
    assert call("GET", "/api/labels?survey=tiny")[1]["count"] == 0
    assert call("POST", "/api/labels/undo", {"survey": "tiny", "user": "ana"})[1]["undone"] is None


def test_integer_object_ids_are_accepted_as_text(home: Path) -> None:
    import numpy as np
    import pandas as pd

    from backend.survey import SurveyWriter

    with SurveyWriter("numbers", ["g"], (8, 8), "test") as writer:
        writer.append(np.zeros((3, 1, 8, 8), np.float32), pd.DataFrame({"object_id": [7, 8, 9]}))
    body = {"survey": "numbers", "object_id": 8, "value": "spiral", "user": "ana"}
    status, answer = call("POST", "/api/labels", body)
    assert status == 201 and answer["object_id"] == "8"


@pytest.mark.parametrize("provider", [login, login_async])
def test_logged_in_user_overrides_the_body(tiny_survey: Survey, provider: Any) -> None:
    status, answer = call("POST", "/api/labels", label(user="mallory"), auth=provider("alice"))
    assert status == 201 and answer["user"] == "alice"
    status, answer = call("POST", "/api/labels", label(), auth=provider("alice"))
    assert status == 201 and answer["user"] == "alice"  # no user needed in the body
    status, undone = call(
        "POST", "/api/labels/undo", {"survey": "tiny", "user": "mallory"}, auth=provider("alice")
    )
    assert undone["user"] == "alice" and undone["undone"]["id"] == answer["id"]
    assert set(label_store().events("tiny")["user"]) == {"alice"}


@pytest.mark.parametrize("provider", [login, login_async])
def test_without_login_nothing_is_read_or_written(tiny_survey: Survey, provider: Any) -> None:
    for method, path, body in [
        ("POST", "/api/labels", label(user="mallory")),
        ("POST", "/api/labels/undo", {"survey": "tiny", "user": "mallory"}),
        ("GET", "/api/labels?survey=tiny", None),
    ]:
        status, answer = call(method, path, body, auth=provider(None))
        assert status == 401 and "log in" in answer["error"]
    assert label_store().events("tiny").empty


def test_a_guest_labels_under_the_name_given(tiny_survey: Survey) -> None:
    assert call("POST", "/api/labels", label(), auth=login("guest"))[0] == 400
    status, answer = call("POST", "/api/labels", label(user="visitor"), auth=login("guest"))
    assert status == 201 and answer["user"] == "visitor"


def test_errors_are_json_with_the_field(tiny_survey: Survey) -> None:
    status, answer = call("POST", "/api/labels", raw=b"{")
    assert status == 400 and answer["field"] is None and "malformed JSON" in answer["error"]
    status, answer = call("POST", "/api/labels", label(user="u" * 300))
    assert status == 400 and answer["field"] == "user" and "1-256" in answer["error"]
    status, answer = call("POST", "/api/labels", raw=b'{"x": "' + b"a" * 70_000 + b'"}')
    assert status == 413
    status, answer = call("PUT", "/api/labels", label(user="ana"))
    assert status == 405 and answer["error"] == "Method Not Allowed"
    assert label_store().events("tiny").empty


# -- the SQLite engine --------------------------------------------------------------------------
def test_sqlite_engine_waits_for_locks_and_commits_durably(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'pragmas.db'}")
    with engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous")
        }
    assert pragma == {"journal_mode": "wal", "busy_timeout": 30000, "synchronous": 2}
