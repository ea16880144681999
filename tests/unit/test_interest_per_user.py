"""Interest scores re-rank per user by default; the team's mean is a choice."""

from __future__ import annotations

from backend.feedback import latest_interest, record_interest
from backend.survey import Survey


def test_latest_interest_of_one_user_or_of_the_team(tiny_survey: Survey) -> None:
    record_interest("tiny", "tiny-0001", 5, "ana")
    record_interest("tiny", "tiny-0001", 1, "bob")
    record_interest("tiny", "tiny-0002", 4, "bob")
    record_interest("tiny", "tiny-0001", 3, "ana")  # ana changes her mind: her latest counts
    assert latest_interest("tiny", user="ana").values.tolist() == [["tiny-0001", 3.0]]
    assert latest_interest("tiny", user="bob").values.tolist() == [
        ["tiny-0001", 1.0], ["tiny-0002", 4.0]
    ]  # fmt: skip
    assert latest_interest("tiny", user="cy").empty
    assert latest_interest("tiny").values.tolist() == [["tiny-0001", 2.0], ["tiny-0002", 4.0]]


def test_the_anomaly_view_says_which_ranking_it_shows() -> None:
    from app.views.anomalies import ranking_note

    assert "your own" in ranking_note(False, "ana")
    assert "the team's" in ranking_note(True, "ana")
