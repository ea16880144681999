"""Callbacks that never put a traceback in the page: errors become a message in an Alert.

A user error (:class:`backend.errors.UserError` and its subclasses, an access refusal, a
``models.errors.ModelError``) shows as its own message on one line and is logged without a
traceback; anything else is a bug: the page says something went wrong, the log gets the
traceback.
"""

from __future__ import annotations

import functools
import html
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import panel as pn

from backend.auth.roles import AccessDenied
from backend.errors import UserError
from backend.evaluation.report import escape as _markdown_escape

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def md(value: object) -> str:
    """``value`` (a user's name, label, class...) as inert Markdown text on one line: HTML
    escaped and Markdown punctuation backslash-escaped (safe in a table cell too)."""
    return _markdown_escape(value)


def h(value: object) -> str:
    """``value`` as inert HTML text (quotes too: safe inside attributes)."""
    return html.escape(str(value), quote=True)


def heading(text: str) -> pn.pane.HTML:
    """A small section title (the template's markdown headings are too large for panels)."""
    return pn.pane.HTML(
        f"<div style='font:600 13px system-ui,sans-serif;letter-spacing:.05em;"
        f"text-transform:uppercase;color:#0b1a33;margin:6px 0 2px'>{text}</div>",
        sizing_mode="stretch_width",
    )


def message_pane(**kw: Any) -> pn.pane.Alert:
    """An Alert that stays hidden until something is said."""
    return pn.pane.Alert("", alert_type="danger", visible=False, margin=(4, 10), **kw)


def say(alert: pn.pane.Alert, text: str, kind: str = "info") -> None:
    """Show ``text`` in ``alert`` (kind: info, success, warning, danger)."""
    alert.param.update(object=text, alert_type=kind, visible=bool(text))


def clear(alert: pn.pane.Alert) -> None:
    alert.param.update(object="", visible=False)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a mistake the user can fix, its message the whole story: a
    :class:`~backend.errors.UserError`, an :class:`~backend.auth.roles.AccessDenied`, or a
    ``models.errors.ModelError`` (looked up only when loaded: the app never imports torch)."""
    if isinstance(exc, UserError | AccessDenied):
        return True
    model_errors = sys.modules.get("models.errors")
    return model_errors is not None and isinstance(exc, model_errors.ModelError)


def explain(exc: Exception) -> str:
    """The Markdown a user sees for an exception: a user error's message on one line (escaped),
    else a generic failure naming the exception."""
    if is_user_error(exc):  # messages quote user text: shown as text, never markup
        return md(exc)
    return (
        f"Something went wrong ({type(exc).__name__}: {md(exc)}). The details are in the server "
        "log; try again, or reload the page."
    )


def log_failure(exc: Exception, what: str, *args: object, logger: logging.Logger = log) -> None:
    """Log that ``what % args`` failed: a user error on one line, anything else with its
    traceback (at ERROR)."""
    if is_user_error(exc):
        logger.info(f"{what} refused: %s", *args, exc)
    else:
        logger.error(f"{what} failed", *args, exc_info=exc)


def guarded(alert: pn.pane.Alert) -> Callable[[F], F]:
    """Decorator: run the callback; on error log it and show it in ``alert`` instead of raising
    (see :func:`explain` and :func:`log_failure`)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                log_failure(exc, "callback %s", getattr(fn, "__name__", fn))
                say(alert, explain(exc), "danger")
                return None

        return run  # type: ignore[return-value]

    return wrap


def has_pool() -> bool:
    """Whether the server has a thread pool (``panel serve --num-threads N``, as ``make run``);
    without one, work meant for it runs in the event loop (the page waits meanwhile)."""
    return pn.state._thread_pool is not None


def in_thread(fn: Callable[[], Any]) -> None:
    """Run ``fn`` on the server's thread pool (``--num-threads``), else right away."""
    if has_pool() and pn.state.curdoc is not None:
        pn.state.execute(fn, schedule="thread")
    else:
        fn()
