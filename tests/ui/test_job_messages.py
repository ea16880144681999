"""What the Models & jobs page says after a cancel request."""

from __future__ import annotations

import pytest

from app.jobs import cancel_message


def test_a_cancel_refused_at_activation_says_too_late_not_requested() -> None:
    """The page said 'Job #7: activating (cancel requested).', which reads as accepted."""
    text, level = cancel_message(7, "activating")
    assert "too late" in text and "requested" not in text and level == "warning"


@pytest.mark.parametrize(
    ("status", "expected"),
    [("cancelled", "cancelled."), ("running", "cancel requested"), ("succeeded", "already")],
)
def test_cancel_messages_follow_the_job_status(status: str, expected: str) -> None:
    assert expected in cancel_message(3, status)[0]
