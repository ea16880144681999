"""Roles on the HTTP routes (label API and ``/thumb``), in-process like ``test_label_api``:
401 without a login, 403 when the role is too low, and nobody undoes another user's label."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from app.labelling import label_store
from app.routes import ROUTES
from backend.auth.users import UserStore
from backend.survey import Survey

PASSWORD = "a long enough password"


def call(
    method: str, path: str, body: object = None, *, user: str | None, provider: bool = True
) -> HTTPResponse:
    """One request to a fresh app whose auth provider says ``user`` is logged in (no provider
    at all: ``provider=False``, as ``panel serve`` without authentication)."""

    async def go() -> HTTPResponse:
        app = Application(ROUTES)
        if provider:
            app.auth_provider = SimpleNamespace(get_user=lambda h: user, get_user_async=None)
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        try:
            return await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}{path}", method=method, raise_error=False,
                body=json.dumps(body) if body is not None else None,
                headers={"Content-Type": "application/json"}, request_timeout=60,
            )  # fmt: skip
        finally:
            server.stop()

    return asyncio.run(go())


def status(method: str, path: str, body: object = None, **kw: Any) -> int:
    return call(method, path, body, **kw).code


LABEL = {"survey": "tiny", "object_id": "tiny-0003", "value": "merger"}
UNDO = {"survey": "tiny"}


@pytest.fixture
def team(tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch) -> Survey:
    monkeypatch.setenv("LATENTSKY_AUTH", "basic")
    store = UserStore()
    for name, role in [
        ("vera", "viewer"), ("lena", "labeller"), ("lars", "labeller"), ("cora", "curator"),
        ("adam", "admin"),
    ]:  # fmt: skip
        store.add(name, role, PASSWORD)
    return tiny_survey


@pytest.mark.parametrize(
    ("user", "browse", "label"),
    [
        (None, 401, 401),
        ("guest", 401, 401),
        ("mallory", 401, 401),  # a cookie of an account that is not (or no longer) in users
        ("vera", 200, 403),
        ("lena", 200, 201),
        ("cora", 200, 201),
        ("adam", 200, 201),
    ],
)
def test_role_matrix_on_the_api_and_thumbnails(
    team: Survey, user: str | None, browse: int, label: int
) -> None:
    assert status("GET", "/thumb/tiny/3.png", user=user) == browse
    assert status("GET", "/thumb/tiny/3.png?band=g&size=32", user=user) == browse
    assert status("GET", "/api/labels?survey=tiny", user=user) == browse
    assert status("POST", "/api/labels", LABEL, user=user) == label
    undo = 200 if label == 201 else label
    assert status("POST", "/api/labels/undo", UNDO, user=user) == undo
    if label != 201:
        assert label_store().events("tiny").empty


def test_refusals_say_why_as_json(team: Survey) -> None:
    response = call("POST", "/api/labels", LABEL, user="vera")
    answer = json.loads(response.body)
    assert response.code == 403 and "vera is a viewer" in answer["error"]
    assert "labeller" in answer["error"]
    response = call("POST", "/api/labels", LABEL, user=None)
    assert response.code == 401 and "log in" in json.loads(response.body)["error"]


def test_a_role_change_applies_to_the_next_request(team: Survey) -> None:
    assert status("POST", "/api/labels", LABEL, user="vera") == 403
    UserStore().set_role("vera", "labeller")
    assert status("POST", "/api/labels", LABEL, user="vera") == 201
    UserStore().remove("vera")
    assert status("GET", "/thumb/tiny/3.png", user="vera") == 401


def test_a_labeller_cannot_undo_another_users_label(team: Survey) -> None:
    mine = json.loads(call("POST", "/api/labels", LABEL, user="lena").body)
    assert mine["user"] == "lena"
    for body in (UNDO, {**UNDO, "user": "lena"}):  # naming lena in the body changes nothing
        answer = json.loads(call("POST", "/api/labels/undo", body, user="lars").body)
        assert answer["user"] == "lars" and answer["undone"] is None
    current = label_store().current("tiny")
    assert current[["user", "value"]].values.tolist() == [["lena", "merger"]]
    answer = json.loads(call("POST", "/api/labels/undo", UNDO, user="lena").body)
    assert answer["undone"]["id"] == mine["id"]


def test_oauth_accounts_get_the_default_role_unless_listed(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSKY_AUTH", "oauth")
    assert status("GET", "/thumb/tiny/3.png", user="octo@example.org") == 200
    assert status("POST", "/api/labels", LABEL, user="octo@example.org") == 403
    UserStore().add("octo@example.org", "labeller")  # an OAuth-only account: no password
    assert status("POST", "/api/labels", LABEL, user="octo@example.org") == 201
    monkeypatch.setenv("LATENTSKY_DEFAULT_ROLE", "labeller")
    assert status("POST", "/api/labels", LABEL, user="new@example.org") == 201
    assert status("GET", "/thumb/tiny/3.png", user=None) == 401


def test_without_auth_everything_stays_open_on_localhost(tiny_survey: Survey) -> None:
    assert status("GET", "/thumb/tiny/3.png", user=None, provider=False) == 200
    assert status("POST", "/api/labels", {**LABEL, "user": "ana"}, user=None, provider=False) == 201
    assert status("POST", "/api/labels", LABEL, user="ana") == 201  # any login: all rights


def test_with_auth_on_and_no_provider_nothing_is_open(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSKY_AUTH", "basic")
    assert status("GET", "/thumb/tiny/3.png", user=None, provider=False) == 401
    assert status("POST", "/api/labels", {**LABEL, "user": "ana"}, user=None, provider=False) == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/labels", {"survey": "tiny"}),  # fields missing
        ("POST", "/api/labels", {**LABEL, "colour": "red"}),  # an unknown field
        ("POST", "/api/labels/undo", {}),
        ("GET", "/api/labels", None),  # no survey parameter
    ],
)
def test_the_login_is_checked_before_the_request_is_read(
    team: Survey, method: str, path: str, body: object
) -> None:
    """Nobody logged in learns nothing of the API's rules: 401 comes before any 400, and a
    viewer's malformed label is refused for the role (403), not for its shape."""
    assert status(method, path, body, user=None) == 401
    if method == "POST":
        assert status(method, path, body, user="vera") == 403
