"""The app's callback guard: a user error shows as its one-line message and is logged without a
traceback; any other exception shows a generic failure and is logged with its traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from app.safe import explain, guarded, message_pane
from backend.auth.roles import AccessDenied
from backend.errors import UserError
from backend.jobs.table import JobError
from backend.survey import SurveyError


def _raises(exc: Exception) -> Callable[..., None]:
    def callback(_event: object = None) -> None:
        raise exc

    return callback


@pytest.mark.parametrize(
    "exc",
    [
        UserError("no survey called 'm31'"),
        SurveyError("no survey called 'm31'"),
        JobError("no survey called 'm31'"),  # was shown as a generic failure before
        AccessDenied("no survey called 'm31'"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_user_error_shows_its_message_on_one_line_without_a_traceback(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    alert = message_pane()
    with caplog.at_level(logging.INFO, logger="app.safe"):
        assert guarded(alert)(_raises(exc))("click") is None
    assert alert.visible and alert.alert_type == "danger"
    assert alert.object == "no survey called 'm31'"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert any("no survey called 'm31'" in r.getMessage() for r in caplog.records)


def test_a_multi_line_user_error_is_one_line_of_inert_text() -> None:
    alert = message_pane()
    guarded(alert)(_raises(UserError("bad field 'z':\n  <b>not</b> a number")))()
    assert alert.object == "bad field 'z': &lt;b&gt;not&lt;/b&gt; a number"
    assert "\n" not in alert.object


def test_a_model_error_is_a_user_error_too() -> None:
    from models.errors import BandMismatchError

    exc = BandMismatchError(["g", "r"], ["u", "g"])
    assert "Something went wrong" not in explain(exc)
    assert "model trained for 2 bands" in explain(exc)


def test_any_other_exception_is_a_generic_failure_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alert = message_pane()

    def lookup(_event: object) -> None:
        {}["ra"]  # the bug under test

    with caplog.at_level(logging.INFO, logger="app.safe"):
        guarded(alert)(lookup)("click")
    assert alert.visible and alert.alert_type == "danger"
    assert alert.object.startswith("Something went wrong (KeyError: 'ra').")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "callback lookup failed" in errors[0].getMessage()
    assert errors[0].exc_info and errors[0].exc_info[0] is KeyError
    assert "Traceback" in caplog.text and "lookup" in caplog.text


def test_a_callback_that_succeeds_returns_its_value_and_says_nothing() -> None:
    alert = message_pane()
    assert guarded(alert)(lambda x: x * 2)(21) == 42
    assert not alert.visible and alert.object == ""
