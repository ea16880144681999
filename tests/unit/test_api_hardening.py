"""HTTP API and thumbnail routes under hostile input: 400/404/429/503 with a JSON message, never 500."""

from __future__ import annotations

import asyncio
import errno
import json
import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from app import api
from app.labelling import label_store
from app.routes import ROUTES
from backend.labels import LabelStore
from backend.survey import Survey


def fetch(method: str, path: str, raw: bytes | None = None, times: int = 1) -> list[HTTPResponse]:
    """``times`` requests to a fresh app (the thumbnail and label routes) on a loopback port."""

    async def go() -> list[HTTPResponse]:
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(Application(ROUTES))
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        try:
            return [
                await AsyncHTTPClient().fetch(
                    f"http://127.0.0.1:{port}{path}",
                    method=method,
                    body=raw,
                    raise_error=False,
                    headers={"Content-Type": "application/json"},
                    request_timeout=60,
                )
                for _ in range(times)
            ]
        finally:
            server.stop()

    return asyncio.run(go())


def post(body: dict[str, Any] | bytes, path: str = "/api/labels") -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = fetch("POST", path, raw)[0]
    return response.code, json.loads(response.body)


def label(**extra: Any) -> dict[str, Any]:
    return {"survey": "tiny", "object_id": "tiny-0003", "value": "merger", **extra}


def test_a_lone_surrogate_in_the_user_name_is_a_400(tiny_survey: Survey) -> None:
    raw = b'{"survey": "tiny", "object_id": "tiny-0003", "value": "merger", "user": "ana\\ud800"}'
    status, answer = post(raw)
    assert status == 400 and answer["field"] == "user" and "surrogate" in answer["error"]
    status, answer = post(label(user="ana\u200b\u202e"))
    assert status == 400 and answer["field"] == "user" and "U+200B" in answer["error"]
    status, answer = post(b'{"survey": "tiny", "user": "\\udfff"}', "/api/labels/undo")
    assert status == 400 and answer["field"] == "user"
    assert label_store().events("tiny").empty


@pytest.mark.parametrize("deep", [20_000, 65])
def test_deeply_nested_json_is_a_400(tiny_survey: Survey, deep: int) -> None:
    raw = b'{"survey": ' + b"[" * deep + b"]" * deep + b"}"
    status, answer = post(raw)
    assert status == 400 and "nested" in answer["error"]
    brackets_in_text = json.dumps(label(user=("[" * 200 + "{" * 50))).encode()
    assert post(brackets_in_text)[0] == 201  # brackets inside strings are text, not nesting


@pytest.mark.parametrize("index", ["9" * 40, "9" * 19, "150"])
def test_thumbnails_past_the_end_are_404(tiny_survey: Survey, index: str) -> None:
    response = fetch("GET", f"/thumb/tiny/{index}.png")[0]
    assert response.code == 404
    assert fetch("GET", "/thumb/tiny/149.png")[0].code == 200


DISK_FULL = [
    sa.exc.OperationalError(
        "INSERT INTO label_events", {}, sqlite3.OperationalError("database or disk is full")
    ),
    OSError(errno.ENOSPC, "No space left on device"),
]


@pytest.mark.parametrize("fault", DISK_FULL, ids=["sqlite-full", "enospc"])
def test_a_full_disk_under_the_label_store_is_a_503(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    def full(*args: Any, **kwargs: Any) -> int:
        raise fault

    monkeypatch.setattr(LabelStore, "add", full)
    status, answer = post(label(user="ana"))
    assert status == 503 and "disk is full" in answer["error"]
    monkeypatch.setattr(LabelStore, "undo_last", full)
    status, answer = post({"survey": "tiny", "user": "ana"}, "/api/labels/undo")
    assert status == 503 and "disk is full" in answer["error"]


def test_each_user_is_rate_limited_with_429(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSKY_API_RATE", "3/60")
    codes = [r.code for r in fetch("GET", "/api/labels?survey=tiny&user=ana", times=5)]
    assert codes == [200, 200, 200, 429, 429]
    answer = json.loads(fetch("GET", "/api/labels?survey=tiny&user=ana")[0].body)
    assert "rate limit" in answer["error"] and "3 requests per 60 s" in answer["error"]
    status, _ = post(label(user="bob"))  # another user has a budget of his own
    assert status == 201
    monkeypatch.setenv("LATENTSKY_API_RATE", "0")  # 0: no limit
    assert fetch("GET", "/api/labels?survey=tiny&user=ana")[0].code == 200


def test_the_default_rate_limit_is_generous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATENTSKY_API_RATE", raising=False)
    requests, seconds = api.rate_limit()
    assert requests / seconds >= 10  # a labeller pressing keys never meets it
    monkeypatch.setenv("LATENTSKY_API_RATE", "lots")
    with pytest.raises(ValueError, match="LATENTSKY_API_RATE"):
        api.rate_limit()


def test_the_store_refuses_indices_past_int64(tiny_survey: Survey) -> None:
    from backend.survey import SurveyError

    for index in (10**19, -(10**30)):
        with pytest.raises(SurveyError, match="out of range"):
            tiny_survey.thumbnail_png(index)
