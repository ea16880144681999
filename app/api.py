"""JSON label API beside the Panel app (served through the ``app.routes`` plugin).

``POST /api/labels``       ``{"survey", "object_id", "value", "user", "task"?}`` → 201 with the
                           stored label and its event ``id``, sent only after the insert committed
``POST /api/labels/undo``  ``{"survey", "user", "task"?}`` → 200 ``{"undone": label or null}``
``GET  /api/labels?survey=NAME[&user=U][&task=T]`` → 200 the current labels (one per object and
                           user, oldest first)

Labels go through the same :class:`~backend.labels.LabelStore` as the Label view
(:func:`app.labelling.label_store`), with ``source="api"``. Bad input is refused before anything
is written: 400 (404 for a survey that does not exist, 415 for a body that is not JSON) with
``{"error": "<message naming the field>", "field": "<field or null>"}``. When Panel
authentication is on, the label's user is the logged-in user (the body's ``user`` is ignored) and
requests without a login get 401; otherwise the body must name the user. Survey checks and
database work run on a small thread pool, never on the event loop.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler

from app.auth import request_account
from app.labelling import label_store
from app.surveys import get_survey
from backend.auth.roles import AccessDenied, require
from backend.config import api_rate
from backend.labels import LabelError, LabelSchema, load_schema
from backend.survey import Survey, SurveyError, survey_path, validate_survey_name
from backend.usertext import UserNameError, validate_user_name

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # bytes; a label is a few hundred
MAX_TEXT = 256
MAX_DEPTH = 64  # nesting of JSON arrays/objects; a label body has depth 1
DISK_FULL = (
    "the server's disk is full: nothing was stored; try again later and tell the server's "
    "administrator"
)
GUEST = "guest"  # Panel's name for visitors of guest endpoints: not a login
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="labels-api")


class ApiError(HTTPError):
    """A request the API refuses: HTTP ``status`` and a message naming the ``field``."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(status, "%s", message)
        self.message = message
        self.field = field


# -- checks (pure; the survey and database ones run on the pool) -----------------------------
def check_fields(
    body: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    """Refuse unknown fields and missing (null or empty) required ones."""
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        expected = ", ".join((*required, *optional))
        raise ApiError(400, f"unknown field {unknown[0]!r} (expected: {expected})", unknown[0])
    for name in required:
        if body.get(name) in (None, ""):
            raise ApiError(400, f"missing field {name!r}", name)


def text(field: str, value: object, *, numbers: bool = False) -> str:
    """``value`` as stripped text of 1-256 characters (integers too when ``numbers``)."""
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        kind = "a string or an integer" if numbers else "a string"
        raise ApiError(400, f"{field} must be {kind}, got {json.dumps(value)}", field)
    out = value.strip()
    if not out or len(out) > MAX_TEXT:
        raise ApiError(400, f"{field} must be 1-{MAX_TEXT} characters, got {value!r}", field)
    return out


def user_name(field: str, value: object) -> str:
    """A user name by the shared rule (:func:`backend.usertext.validate_user_name`), else 400."""
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be a string, got {json.dumps(value)}", field)
    try:
        return validate_user_name(value, what=field)
    except UserNameError as exc:
        raise ApiError(400, str(exc), field) from None


def json_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in the JSON text ``raw`` (brackets inside strings do not
    count); stops counting once past ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def rate_limit() -> tuple[int, float]:
    """(requests, seconds) each user may make (``LATENTSKY_API_RATE``: ``config.api_rate``)."""
    return api_rate()


class RateLimiter:
    """Token buckets per user: ``requests`` at once, refilled at ``requests / seconds`` per s."""

    MAX_KEYS = 10_000

    def __init__(self, requests: int, seconds: float) -> None:
        self.requests, self.seconds = requests, seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        rate = self.requests / self.seconds
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.requests), now))
            tokens = min(float(self.requests), tokens + (now - last) * rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > self.MAX_KEYS:  # forget users whose bucket is full again
                full = now - self.seconds
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > full}
            return allowed


_limiter: RateLimiter | None = None


def check_rate(key: str) -> None:
    """429 when ``key`` (a user, or a client address) has used up its requests."""
    global _limiter
    requests, seconds = rate_limit()
    if requests == 0:
        return
    if _limiter is None or (_limiter.requests, _limiter.seconds) != (requests, seconds):
        _limiter = RateLimiter(requests, seconds)
    if not _limiter.allow(key):
        raise ApiError(
            429, f"rate limit: at most {requests} requests per {seconds:g} s per user; slow down"
        )


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the database's) is full: ENOSPC/EDQUOT, SQLite's
    "database or disk is full", PostgreSQL's disk_full (SQLSTATE 53100)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    text = str(exc).lower()
    return code == "53100" or "disk is full" in text or "no space left on device" in text


def open_survey(name: object) -> Survey:
    """The survey ``name``: 400 for a bad name (path tricks), 404 when it does not exist."""
    if not isinstance(name, str):
        raise ApiError(400, f"survey must be a string, got {json.dumps(name)}", "survey")
    try:
        validate_survey_name(name)
    except SurveyError as exc:
        raise ApiError(400, f"survey: {exc}", "survey") from None
    if not survey_path(name).is_dir():
        try:
            Survey.open(name)  # its message lists the known surveys
        except SurveyError as exc:
            raise ApiError(404, f"survey: {exc}", "survey") from None
    try:
        return get_survey(name)
    except SurveyError as exc:
        raise ApiError(400, f"survey: {exc}", "survey") from None


def schema_task(survey: str, task: object) -> tuple[LabelSchema, str]:
    """The survey's label schema and the task (default: the schema's; another is refused)."""
    schema = load_schema(survey)
    if task in (None, ""):
        return schema, schema.task
    task = text("task", task)
    if task != schema.task:
        raise ApiError(
            400, f"unknown task {task!r} for survey {survey} (tasks: {schema.task})", "task"
        )
    return schema, task


def add_label(survey: str, object_id: str, value: str, user: str, task: object) -> dict[str, Any]:
    """Check and store one label; returns it with its event id once committed."""
    opened = open_survey(survey)
    schema, task = schema_task(survey, task)
    try:
        opened.index_of(object_id)
    except SurveyError as exc:
        raise ApiError(400, f"object_id: {exc}", "object_id") from None
    if value not in schema.by_name:
        classes = ", ".join(schema.names)
        message = f"value: unknown class {value!r} for survey {survey} (classes: {classes})"
        raise ApiError(400, message, "value")
    try:
        event = label_store().add(
            survey, object_id, value, user=user, task=task, source="api", schema=schema
        )
    except LabelError as exc:  # the store's own checks: same rules, nothing written
        raise ApiError(400, str(exc)) from None
    return {
        "id": event, "survey": survey, "object_id": object_id, "value": value, "user": user,
        "task": task,
    }  # fmt: skip


def undo_label(survey: str, user: str, task: object) -> dict[str, Any]:
    open_survey(survey)
    _, task = schema_task(survey, task)
    try:
        undone = label_store().undo_last(survey, user=user, task=task)
    except LabelError as exc:
        raise ApiError(400, str(exc)) from None
    if undone is not None:
        undone = {"id": int(undone["id"]), "object_id": str(undone["object_id"]),
                  "value": str(undone["value"])}  # fmt: skip
    return {"survey": survey, "user": user, "task": task, "undone": undone}


def _label_json(r: Any) -> dict[str, Any]:
    created = r.created
    if created is not None and created.tzinfo is None:  # SQLite drops the zone; stored in UTC
        created = created.replace(tzinfo=UTC)
    created = created.isoformat() if created is not None else None
    return {
        "id": int(r.id), "object_id": str(r.object_id), "value": str(r.value),
        "user": str(r.user), "weight": float(r.weight), "source": str(r.source),
        "created": created,
    }  # fmt: skip


def current_labels(survey: str, user: str | None, task: object) -> dict[str, Any]:
    open_survey(survey)
    _, task = schema_task(survey, task)
    frame = label_store().current(survey, task=task, user=user)
    labels = [_label_json(r) for r in frame.itertuples(index=False)]
    return {"survey": survey, "task": task, "count": len(labels), "labels": labels}


# -- handlers ----------------------------------------------------------------------------------
class _LabelApiHandler(RequestHandler):
    """JSON in and out; errors as ``{"error", "field"}``; Panel/Bokeh auth when it is on."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    # auth: the login the Bokeh application's provider (Panel's basic auth or OAuth) sees and
    # its role (app.auth; LATENTSKY_AUTH=none: one local user with every right)
    async def prepare(self) -> None:
        self.account = await request_account(self)

    def login(self, action: str = "label") -> str | None:
        """The logged-in user (None: no login, the body names the user); 401 when nobody is
        logged in and one is needed, 403 when the account's role may not do ``action``."""
        try:
            account = require(self.account, action)
        except AccessDenied as exc:
            raise ApiError(exc.status, str(exc)) from None
        return user_name("user", account.name) if account.name else None

    def user(self, given: object) -> str:
        """Who the label is stored under: the login, else the body's ``user``; counted against
        that user's rate limit."""
        login = self.login("label")
        if login is None:
            if given in (None, ""):
                message = "missing field 'user' (the name the label is stored under)"
                raise ApiError(400, message, "user")
            login = user_name("user", given)
        check_rate(f"user:{login}")
        return login

    def json_body(self) -> dict[str, Any]:
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(415, "send the body as JSON with 'Content-Type: application/json'")
        if len(self.request.body) > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes")
        if json_depth(self.request.body) > MAX_DEPTH:
            raise ApiError(400, f"the JSON body is nested more than {MAX_DEPTH} levels deep")
        try:
            body = json.loads(self.request.body or b"")
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ApiError(400, f"malformed JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, 'the JSON body must be an object, e.g. {"survey": ...}')
        return body

    async def run(self, status: int, fn: Callable[..., dict[str, Any]], *args: Any) -> None:
        try:
            result = await IOLoop.current().run_in_executor(_POOL, fn, *args)
        except (OSError, sa.exc.DBAPIError) as exc:
            if not disk_full(exc):
                raise
            log.error("label API: %s", exc)
            raise ApiError(503, DISK_FULL) from None
        self.set_status(status)
        self.finish(json.dumps(result))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code in (429, 503):
            self.set_header("Retry-After", "60")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            body = {"error": exc.message, "field": exc.field}
        elif isinstance(exc, HTTPError):
            body = {"error": exc.log_message or self._reason, "field": None}
        else:
            body = {"error": "internal error (see the server log)", "field": None}
        self.finish(json.dumps(body))


class LabelsHandler(_LabelApiHandler):
    async def get(self) -> None:
        login = self.login("browse")  # before the request is read: 401/403 before any 400
        survey = self.get_query_argument("survey", None)
        if not survey:
            raise ApiError(400, "missing query parameter 'survey'", "survey")
        user = self.get_query_argument("user", None)
        user = user_name("user", user) if user is not None else None
        who = login or user
        check_rate(f"user:{who}" if who else f"ip:{self.request.remote_ip}")
        await self.run(200, current_labels, survey, user, self.get_query_argument("task", None))

    async def post(self) -> None:
        self.login("label")  # before the request is read: 401/403 before any 400
        body = self.json_body()
        check_fields(body, ("survey", "object_id", "value"), ("user", "task"))
        user = self.user(body.get("user"))
        object_id = text("object_id", body["object_id"], numbers=True)
        value = text("value", body["value"])
        await self.run(201, add_label, body["survey"], object_id, value, user, body.get("task"))


class UndoHandler(_LabelApiHandler):
    async def post(self) -> None:
        self.login("label")  # before the request is read: 401/403 before any 400
        body = self.json_body()
        check_fields(body, ("survey",), ("user", "task"))
        user = self.user(body.get("user"))
        await self.run(200, undo_label, body["survey"], user, body.get("task"))


ROUTES = [(r"/api/labels/?", LabelsHandler, {}), (r"/api/labels/undo/?", UndoHandler, {})]
