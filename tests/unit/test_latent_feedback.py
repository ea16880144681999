"""Interest scores: append-only events, latest per user averaged over users, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.db import engine_for
from backend.feedback import (
    FeedbackError,
    interest_scores,
    latest_interest,
    record_interest,
)
from backend.survey import Survey


def test_latest_score_per_user_averaged_over_users(home: Path, database: str) -> None:
    record_interest("tiny", "a", 5, "ann")
    record_interest("tiny", "a", 3, "ann")  # ann changes her mind: 3 counts, not 5
    record_interest("tiny", "a", 1, "bob")
    record_interest("tiny", "b", 0, "ann")
    record_interest("other", "a", 5, "ann")
    table = latest_interest("tiny")
    assert table.to_dict("list") == {"object_id": ["a", "b"], "score": [2.0, 0.0]}
    assert latest_interest("empty").empty
    with engine_for().connect() as conn:  # append-only: every event kept, WAL journal
        assert conn.execute(sa.select(sa.func.count()).select_from(interest_scores)).scalar() == 5
        if database == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (home / "latentsky.db").is_file() == (database == "sqlite")


@pytest.mark.parametrize("score", [6, -1, 2.5, True, "3", None])
def test_score_must_be_an_integer_0_to_5(home: Path, score: object) -> None:
    with pytest.raises(FeedbackError, match="integer 0-5"):
        record_interest("tiny", "a", score)  # type: ignore[arg-type]


@pytest.mark.parametrize("user", ["ana\u200b\u202e", "a\x00b", "\ud800", "\u202eevil"])
def test_interest_scores_refuse_hidden_or_control_characters_in_user_names(
    home: Path, user: str
) -> None:
    """Every caller, not only the app's Anomalies view, gets the shared user-name check."""
    with pytest.raises(FeedbackError, match="user"):
        record_interest("tiny", "a", 3, user=user)


def test_object_must_exist_when_a_survey_is_given(tiny_survey: Survey) -> None:
    assert record_interest(tiny_survey, "tiny-0003", 4, "ann") >= 1
    with pytest.raises(FeedbackError, match="unknown object id 'ghost'"):
        record_interest(tiny_survey, "ghost", 4, "ann")
    with pytest.raises(FeedbackError, match="user must be"):
        record_interest("tiny", "a", 4, "  ")
    with pytest.raises(FeedbackError, match="invalid survey name"):
        record_interest("../etc", "a", 4)


def test_database_url_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'labels.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    record_interest("tiny", "x", 2)
    assert (tmp_path / "sub" / "labels.db").is_file()
    assert latest_interest("tiny")["score"].tolist() == [2.0]
