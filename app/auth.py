"""Accounts and roles in the web server: who is asking, and the one check for routes and
callbacks (:func:`backend.auth.roles.require` underneath).

- HTTP routes (``/thumb``, ``/api/labels``...): :func:`request_account` reads the login from the
  Bokeh application's auth provider (Panel's basic/OAuth cookie) and resolves its role
  (:func:`backend.auth.serving.account_for`, on a thread: it reads the database);
  :func:`authorize` raises :class:`tornado.web.HTTPError` 401/403.
- Panel callbacks: :func:`session_account` (``pn.state.user``) and :func:`require_session`,
  which raises :class:`~backend.auth.roles.AccessDenied` (shown in the view's alert).
- What the page offers: :func:`restrict` disables the controls of an action the session's role
  may not do, with a tooltip naming the role needed (:func:`missing_role`). The checks in the
  callbacks stay the guard; this only keeps the page from offering what would be refused.

With ``LATENTSKY_AUTH=none`` (served on localhost only, see :mod:`app.serving`) every request
has every right, as before accounts existed; a request that a Panel auth provider sees without a
login is still refused (401).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler

from backend.auth.roles import AccessDenied, Account, minimum_role, require
from backend.auth.serving import GUEST, account_for
from backend.config import get_settings

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auth")
_NOBODY = object()


class AuthError(HTTPError):
    """401/403 of a route, with the message for the user (``message``)."""

    def __init__(self, denied: AccessDenied) -> None:
        super().__init__(denied.status, "%s", str(denied))
        self.message = str(denied)
        if denied.status == 401:
            self.reason = "Unauthorized"


async def provider_login(handler: RequestHandler) -> tuple[bool, Any]:
    """(whether the application has an auth provider, the login it sees or None)."""
    provider = getattr(handler.application, "auth_provider", None)
    if provider is None:
        return False, None
    if getattr(provider, "get_user_async", None) is not None:
        return True, await provider.get_user_async(handler)
    if getattr(provider, "get_user", None) is not None:
        return True, provider.get_user(handler)
    return False, None


async def request_account(handler: RequestHandler) -> Account | None:
    """The account of the request (cached on the handler); None: nobody logged in."""
    cached = getattr(handler, "_latentsky_account", _NOBODY)
    if cached is not _NOBODY:
        return cached  # type: ignore[return-value]
    auth_on, login = await provider_login(handler)
    if isinstance(login, bytes):
        login = login.decode("utf-8", "replace")
    if get_settings().auth == "none":
        # one local user; a provider that sees nobody (Panel's own --basic-auth) still says no
        account = None if auth_on and not login else account_for(login)
    else:
        account = await IOLoop.current().run_in_executor(_POOL, account_for, login)
    handler._latentsky_account = account  # type: ignore[attr-defined]
    return account


async def authorize(handler: RequestHandler, action: str) -> Account:
    """The request's account when it may do ``action``; else :class:`AuthError` 401/403."""
    try:
        return require(await request_account(handler), action)
    except AccessDenied as exc:
        raise AuthError(exc) from None


def session_login() -> str | None:
    """The login of the current Panel session (None: none, or a guest)."""
    import panel as pn

    user = pn.state.user
    return str(user) if user and user != GUEST else None


def session_account() -> Account | None:
    """The account of the current Panel session (``LATENTSKY_AUTH=none``: the local user)."""
    return account_for(session_login())


def require_session(action: str) -> Account:
    """The session's account when it may do ``action``; else :class:`AccessDenied`."""
    return require(session_account(), action)


def logged_in() -> bool:
    """Whether labels of this session are stored under its login (the name box is not shown)."""
    return session_login() is not None


def missing_role(action: str, account: Account | None = None) -> str | None:
    """Why the session (or ``account``) may not do ``action``, for a tooltip or a notice; None
    when it may."""
    account = session_account() if account is None else account
    what = action.replace("_", " ")
    if account is None:
        return f"Log in to {what}."
    if account.can(action):
        return None
    who = html.escape(account.name) if account.name else "this user"
    return (
        f"You are signed in as {who} ({account.role}): {what} needs the role "
        f"{minimum_role(action)} or higher (ask an admin)."
    )


def restrict(action: str, widgets: Iterable[Any], account: Account | None = None) -> str | None:
    """Disable ``widgets`` with the reason as their tooltip when the session (or ``account``)
    may not do ``action``; returns that reason (None: allowed, widgets left as they are)."""
    why = missing_role(action, account)
    if why is None:
        return None
    for widget in widgets:
        widget.disabled = True
        if "description" in widget.param:
            widget.description = why
    return why
