"""Callbacks that never put a traceback in the page: errors become a message in an Alert."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import panel as pn

from backend.auth.roles import AccessDenied
from backend.config import ConfigError
from backend.evaluation.report import escape as _markdown_escape
from backend.feedback import FeedbackError
from backend.labels import LabelError
from backend.labels.schema import SchemaError
from backend.latent.errors import LatentError
from backend.products import ProductError
from backend.registry import RegistryError
from backend.survey import SurveyError

log = logging.getLogger(__name__)

#: Errors whose message is meant for the user as it is.
USER_ERRORS: tuple[type[Exception], ...] = (
    LatentError, SurveyError, LabelError, SchemaError, FeedbackError, ProductError, RegistryError, ConfigError,
    AccessDenied,
)  # fmt: skip

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


def explain(exc: Exception) -> str:
    """The Markdown a user sees for an exception (its message escaped)."""
    if isinstance(exc, USER_ERRORS):  # messages quote user text: shown as text, never markup
        return md(exc)
    return (
        f"Something went wrong ({type(exc).__name__}: {md(exc)}). The details are in the server "
        "log; try again, or reload the page."
    )


def guarded(alert: pn.pane.Alert) -> Callable[[F], F]:
    """Decorator: run the callback; on error log it and show it in ``alert`` instead of raising."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not isinstance(exc, USER_ERRORS):
                    log.exception("callback %s failed", getattr(fn, "__name__", fn))
                say(alert, explain(exc), "danger")
                return None

        return run  # type: ignore[return-value]

    return wrap


def in_thread(fn: Callable[[], Any]) -> None:
    """Run ``fn`` on the server's thread pool (``--num-threads``), else right away."""
    if pn.state._thread_pool is not None and pn.state.curdoc is not None:
        pn.state.execute(fn, schedule="thread")
    else:
        fn()
