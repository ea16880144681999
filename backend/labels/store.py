"""The label store: every label and every undo is an appended event (SQLAlchemy Core).

Nothing is updated or deleted, so a label acknowledged to a user (its insert committed) survives
a killed server. The *current* label of an object for a user is that user's latest label event
on it that no undo event points at; undo removes the user's latest effective label.
Vote fractions (soft labels, e.g. Galaxy Zoo) live beside the events (``backend.labels.votes``)
and count in the consensus as one more labeller per vote source, weighted by the fractions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.db import engine_for, ensure_schema, metadata, write_transaction
from backend.errors import UserError
from backend.labels import votes as vote_rows
from backend.labels.schema import LabelSchema, load_schema
from backend.labels.weights import weight_problem
from backend.survey import Survey, SurveyError, validate_survey_name
from backend.usertext import validate_user_name

MAX_TEXT = 256

label_events = sa.Table(
    "label_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("survey", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(MAX_TEXT), nullable=False),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("value", sa.String(MAX_TEXT), nullable=True),  # NULL for undo events
    sa.Column("user", sa.String(MAX_TEXT), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),  # ui, import, catalog, oracle...
    sa.Column("weight", sa.Float, nullable=False, default=1.0),  # soft labels (vote fractions)
    sa.Column("undoes", sa.Integer, nullable=True),  # id of the label event an undo cancels
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_label_events_survey_task", "survey", "task"),
    sa.Index("ix_label_events_undoes", "undoes"),
)


class LabelError(UserError, ValueError):
    """A label that cannot be stored (unknown class, object or survey); nothing was written."""


class LabelStore:
    """Append-only label events in ``DATABASE_URL`` (SQLite WAL by default)."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        self.engine = engine or engine_for(url)
        ensure_schema(self.engine)  # migrations (an old database upgrades in place)
        self._surveys: dict[str, Survey] = {}

    # -- validation --------------------------------------------------------------------------
    def _survey(self, name: str) -> Survey:
        try:
            validate_survey_name(name)
            survey = self._surveys.get(name) or Survey.open(name)
        except SurveyError as exc:
            raise LabelError(str(exc)) from None
        self._surveys[name] = survey
        return survey

    def _check(self, survey: str, object_id: str, value: str, schema: LabelSchema | None) -> None:
        try:
            self._survey(survey).index_of(str(object_id))
        except SurveyError as exc:
            raise LabelError(str(exc)) from None
        schema = schema or load_schema(survey)
        if value not in schema.by_name:
            raise LabelError(
                f"unknown class {value!r} for survey {survey} (classes: {', '.join(schema.names)})"
            )

    @staticmethod
    def _text(what: str, value: object) -> str:
        text = str(value).strip() if value is not None else ""
        if not text or len(text) > MAX_TEXT:
            raise LabelError(f"{what} must be 1-{MAX_TEXT} characters, got {value!r}")
        return text

    # -- writing -----------------------------------------------------------------------------
    def add(
        self,
        survey: str,
        object_id: str,
        value: str,
        *,
        user: str,
        task: str = "class",
        source: str = "ui",
        weight: float = 1.0,
        schema: LabelSchema | None = None,
    ) -> int:
        """Store one label (committed before returning) and return its event id."""
        user = validate_user_name(user, error=LabelError)
        value = self._text("label", value)
        self._check(survey, object_id, value, schema)
        row = self._row(survey, object_id, task, value, user, source, weight, None)
        with self.engine.begin() as conn:
            return int(conn.execute(label_events.insert().values(**row)).inserted_primary_key[0])

    def add_many(
        self, rows: pd.DataFrame, *, user: str | None = None, task: str = "class", source: str
    ) -> int:
        """Bulk import (columns survey, object_id, value[, weight][, user]) in one transaction:
        every row is checked first and nothing is written when one is bad. ``user`` names the
        labeller of all rows, else each row's ``user`` column does."""
        if user is None and "user" not in rows:
            raise LabelError("imported labels need a user (a user column or one name for all)")
        events = []
        schemas: dict[str, LabelSchema] = {}
        for n, r in enumerate(rows.itertuples(index=False), start=1):
            who = validate_user_name(
                user if user is not None else r.user, what=f"user (row {n})", error=LabelError
            )
            schema = schemas.setdefault(r.survey, load_schema(r.survey))
            value = self._text(f"label (row {n})", r.value)
            self._check(r.survey, r.object_id, value, schema)
            weight = getattr(r, "weight", 1.0)
            if (problem := weight_problem(weight)) is not None:
                raise LabelError(f"row {n}: field 'weight' {problem}")
            weight = float(weight)
            events.append(self._row(r.survey, r.object_id, task, value, who, source, weight, None))
        if events:
            with self.engine.begin() as conn:
                conn.execute(label_events.insert(), events)
        return len(events)

    def undo_last(self, survey: str, *, user: str, task: str = "class") -> dict[str, Any] | None:
        """Cancel ``user``'s latest effective label in ``task``; returns it, or None."""
        user = self._text("user", user)
        # read then write: take this user's undo lock first (SQLite: the database's write lock)
        with write_transaction(self.engine, "undo", survey, task, user) as conn:
            undone = sa.select(label_events.c.undoes).where(label_events.c.undoes.is_not(None))
            last = conn.execute(
                sa.select(label_events.c.id, label_events.c.object_id, label_events.c.value)
                .where(
                    label_events.c.survey == survey,
                    label_events.c.task == task,
                    label_events.c.user == user,
                    label_events.c.value.is_not(None),
                    label_events.c.id.not_in(undone),
                )
                .order_by(label_events.c.id.desc())
                .limit(1)
            ).first()
            if last is None:
                return None
            row = self._row(survey, last.object_id, task, None, user, "undo", 0.0, last.id)
            conn.execute(label_events.insert().values(**row))
        return {"id": last.id, "object_id": last.object_id, "value": last.value}

    def import_votes(
        self,
        survey: str,
        fractions: pd.DataFrame,
        *,
        source: str,
        task: str = "class",
        n_votes: pd.Series | None = None,
        where: str = "votes",
    ) -> int:
        """Store vote fractions (columns ``object_id`` + one per class, any scale: rows are
        normalised to sum 1) as one batch; all rows are checked first, nothing is written when
        one is bad. Returns the number of objects."""
        source = validate_user_name(source, what="vote source", error=LabelError)
        schema = load_schema(survey)
        catalog = self._survey(survey).catalog["object_id"].astype(str)
        if "object_id" not in fractions:
            raise LabelError(f"{where}: needs an object_id column")
        classes = [c for c in fractions.columns if c != "object_id"]
        unknown = [c for c in classes if c not in schema.by_name]
        if unknown or not classes:
            raise LabelError(
                f"{where}: unknown class column(s) {unknown} for survey {survey} "
                f"(classes: {', '.join(schema.names)})"
            )
        ids = fractions["object_id"].astype(str)
        missing = ids[~ids.isin(set(catalog))]
        if len(missing):
            raise LabelError(
                f"{where}: {len(missing)} object id(s) not in survey {survey}: "
                f"{', '.join(missing.head(5))}{', ...' if len(missing) > 5 else ''}"
            )
        repeated = ids[ids.duplicated()]
        if len(repeated):
            raise LabelError(f"{where}: object ids repeated: {', '.join(repeated.head(5))}")
        clean, problems = vote_rows.normalise_fractions(
            fractions.assign(object_id=ids), classes, where
        )
        if problems:
            raise LabelError("; ".join(problems))
        return vote_rows.write_votes(
            self.engine, survey, clean, classes, source=source, task=task, n_votes=n_votes
        )

    def votes(self, survey: str, *, task: str = "class") -> pd.DataFrame:
        """Effective vote fractions (long form: object_id, value, fraction, n_votes, source)."""
        return vote_rows.current_votes(self.engine, survey, task)

    def soft_labels(self, survey: str, *, task: str = "class") -> pd.DataFrame:
        """One row per object with votes, one fraction column per class of the schema."""
        return vote_rows.soft_label_table(self.votes(survey, task=task), load_schema(survey).names)

    @staticmethod
    def _row(
        survey: str, object_id: str, task: str, value: str | None, user: str, source: str,
        weight: float, undoes: int | None,
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "survey": survey, "object_id": str(object_id), "task": task, "value": value,
            "user": user, "source": source, "weight": weight, "undoes": undoes,
            "created": datetime.now(UTC),
        }  # fmt: skip

    # -- reading -----------------------------------------------------------------------------
    def _effective(self, survey: str, task: str, user: str | None) -> sa.Select:
        undone = sa.select(label_events.c.undoes).where(label_events.c.undoes.is_not(None))
        conds = [
            label_events.c.survey == survey,
            label_events.c.task == task,
            label_events.c.value.is_not(None),
            label_events.c.id.not_in(undone),
        ]
        if user is not None:
            conds.append(label_events.c.user == user)
        latest = (
            sa.select(sa.func.max(label_events.c.id))
            .where(*conds)
            .group_by(label_events.c.object_id, label_events.c.user)
        )
        return sa.select(
            label_events.c.id, label_events.c.object_id, label_events.c.value,
            label_events.c.user, label_events.c.weight, label_events.c.source,
            label_events.c.created,
        ).where(label_events.c.id.in_(latest))  # fmt: skip

    def current(self, survey: str, *, task: str = "class", user: str | None = None) -> pd.DataFrame:
        """Effective labels: one row per (object, user), oldest first."""
        query = self._effective(survey, task, user).order_by(label_events.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        columns = ["id", "object_id", "value", "user", "weight", "source", "created"]
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)

    def count(
        self, survey: str, *, task: str = "class", user: str | None = None, after: int = 0
    ) -> int:
        """Effective labels (one per object and user); ``after``: only those whose event id is
        greater (given since a snapshot's ``last_event_id``)."""
        effective = self._effective(survey, task, user).where(label_events.c.id > int(after))
        query = sa.select(sa.func.count()).select_from(effective.subquery())
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def events(self, survey: str, *, task: str = "class") -> pd.DataFrame:
        """Every event (labels and undos) in order, for audits and exports."""
        query = (
            sa.select(label_events)
            .where(label_events.c.survey == survey, label_events.c.task == task)
            .order_by(label_events.c.id)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())

    def consensus(
        self, survey: str, *, task: str = "class", with_votes: bool = True
    ) -> pd.DataFrame:
        """Per object: majority label over labellers, their number and agreement (the winning
        share of the weight). Each vote source counts as one labeller whose weight is spread
        over the classes by its fractions."""
        current = self.current(survey, task=task)[["object_id", "value", "user", "weight"]]
        if with_votes:
            votes = self.votes(survey, task=task)
            if len(votes):
                votes = votes.assign(user="votes:" + votes["source"], weight=votes["fraction"])
                current = pd.concat([current, votes[current.columns]], ignore_index=True)
        if current.empty:
            return pd.DataFrame(columns=["object_id", "value", "n_users", "agreement"])
        votes = current.groupby(["object_id", "value"])["weight"].sum().reset_index()
        totals = votes.groupby("object_id")["weight"].transform("sum")
        votes["agreement"] = votes["weight"] / totals
        best = votes.sort_values(["object_id", "weight"], ascending=[True, False])
        best = best.drop_duplicates("object_id")
        users = current.groupby("object_id")["user"].nunique().rename("n_users")
        return best.merge(users, on="object_id")[["object_id", "value", "n_users", "agreement"]]

    def agreement(self, survey: str, *, task: str = "class") -> dict[str, Any]:
        """Agreement between labellers (and vote sources): see :mod:`backend.labels.agreement`."""
        from backend.labels.agreement import agreement_report, votes_as_answers

        answers = pd.concat(
            [self.current(survey, task=task)[["object_id", "user", "value"]],
             votes_as_answers(self.votes(survey, task=task))],
            ignore_index=True,
        )  # fmt: skip
        return agreement_report(answers)
