"""Users' interest scores (0-5) on objects, as append-only events in SQL (SQLAlchemy Core).

The table lives in the shared database (:mod:`backend.db`). Each call of
:func:`record_interest` inserts one row in its own committed transaction; nothing is updated or
deleted, so a killed process loses at most the score whose call had not returned.
:func:`latest_interest` reads the latest score of each user per object (highest ``id``) and
averages over users.
"""

from __future__ import annotations

import numbers
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.db import MAX_TEXT, engine_for, metadata
from backend.errors import UserError
from backend.survey.meta import validate_survey_name
from backend.survey.store import Survey
from backend.usertext import validate_user_name

MIN_SCORE, MAX_SCORE = 0, 5

interest_scores = sa.Table(
    "interest_scores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("survey", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(MAX_TEXT), nullable=False),
    sa.Column("user", sa.String(MAX_TEXT), nullable=False),
    sa.Column("score", sa.SmallInteger, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f"score >= {MIN_SCORE} AND score <= {MAX_SCORE}", name="score_range"),
    sa.Index("ix_interest_scores_survey_object", "survey", "object_id"),
)


class FeedbackError(UserError, ValueError):
    """An interest score that cannot be recorded (the message says why)."""


def record_interest(
    survey: str | Survey,
    object_id: str,
    score: int,
    user: str = "anonymous",
    *,
    engine: Engine | None = None,
) -> int:
    """Append one interest score and return its id.

    ``score`` must be an integer 0-5. When ``survey`` is a :class:`Survey` the object must be
    one of its objects; with a survey name only the name is checked.
    """
    if isinstance(survey, Survey):
        name = survey.name
        try:
            survey.index_of(str(object_id))
        except ValueError as exc:
            raise FeedbackError(str(exc)) from None
    else:
        name = survey
    try:
        name = validate_survey_name(name)
    except ValueError as exc:
        raise FeedbackError(str(exc)) from None
    value = _check_score(score)
    object_id = _check_text("object id", object_id)
    user = validate_user_name(user, error=FeedbackError)
    row = {
        "survey": name,
        "object_id": object_id,
        "user": user,
        "score": value,
        "created": datetime.now(UTC),
    }
    with (engine or engine_for()).begin() as conn:
        result = conn.execute(interest_scores.insert().values(**row))
        return int(result.inserted_primary_key[0])


def latest_interest(
    survey: str, *, user: str | None = None, engine: Engine | None = None
) -> pd.DataFrame:
    """``object_id, score``: per object, the mean over users of each user's latest score (only
    ``user``'s latest scores when given: a ranking of one's own)."""
    latest = (
        sa.select(sa.func.max(interest_scores.c.id))
        .where(interest_scores.c.survey == survey)
        .group_by(interest_scores.c.object_id, interest_scores.c.user)
    )
    if user is not None:
        latest = latest.where(interest_scores.c.user == user)
    query = (
        sa.select(
            interest_scores.c.object_id,
            sa.func.avg(interest_scores.c.score).label("score"),
        )
        .where(interest_scores.c.id.in_(latest))
        .group_by(interest_scores.c.object_id)
        .order_by(interest_scores.c.object_id)
    )
    with (engine or engine_for()).connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(
        {
            "object_id": pd.Series([r.object_id for r in rows], dtype=object),
            "score": pd.Series([float(r.score) for r in rows], dtype="float64"),
        }
    )


def _check_score(score: object) -> int:
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        raise FeedbackError(
            f"interest score must be an integer {MIN_SCORE}-{MAX_SCORE}, got {score!r}"
        )
    if score != int(score) or not MIN_SCORE <= score <= MAX_SCORE:
        raise FeedbackError(
            f"interest score must be an integer {MIN_SCORE}-{MAX_SCORE}, got {score!r}"
        )
    return int(score)


def _check_text(what: str, value: object) -> str:
    text = str(value).strip() if value is not None else ""
    if not text or len(text) > MAX_TEXT:
        raise FeedbackError(f"{what} must be 1-{MAX_TEXT} characters, got {value!r}")
    return text
