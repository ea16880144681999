"""Collections: named lists of a survey's objects (a selection, a search result, a top-N
anomaly list) with a note, shared with everyone who works on that survey.

One row per collection in the shared database (table ``collections``, migration ``0005``):
survey, name (unique per survey), note, kind, owner, the object ids in the order saved (JSON)
and when it was made. Names and notes are text people type: NFC-normalised and checked by the
rules of :mod:`backend.usertext` (a note may hold line feeds). Every id must be an object of
the survey. A labeller or higher may save a collection; its owner or a curator may delete it
(:mod:`backend.auth.roles`). Each write is one committed transaction; saving a name that exists
in the survey is refused (the unique constraint decides between two racing saves).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.auth.roles import Account, require
from backend.db import MAX_TEXT, engine_for, metadata
from backend.errors import UserError
from backend.survey.meta import SurveyError, validate_survey_name
from backend.survey.store import Survey
from backend.usertext import REFUSED_CATEGORIES, validate_user_name

KINDS: tuple[str, ...] = ("selection", "search", "anomalies")
MAX_NOTE = 4000
MAX_OBJECTS = 1_000_000

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("survey", sa.String(64), nullable=False),
    sa.Column("name", sa.String(MAX_TEXT), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(MAX_TEXT), nullable=False),
    sa.Column("object_ids", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("survey", "name", name="uq_collections_survey_name"),
)


class CollectionError(UserError, ValueError):
    """A collection that cannot be saved, found or deleted (the message says why)."""


@dataclass(frozen=True)
class Collection:
    """One saved collection; ``object_ids`` in the order they were saved."""

    id: int
    survey: str
    name: str
    note: str
    kind: str
    owner: str
    object_ids: tuple[str, ...]
    created: datetime

    @property
    def size(self) -> int:
        return len(self.object_ids)


def check_name(name: object) -> str:
    """A collection name: NFC, stripped, 1-256 visible characters (as user names)."""
    return validate_user_name(name, what="collection name", error=CollectionError)


def check_note(note: object) -> str:
    """A note: NFC, stripped, at most :data:`MAX_NOTE` characters; line feeds allowed, no other
    control, invisible formatting, private-use or unassigned character."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise CollectionError(f"collection note must be text, got {type(note).__name__}")
    for i, ch in enumerate(note):
        category = unicodedata.category(ch)
        if ch != "\n" and category in REFUSED_CATEGORIES:
            raise CollectionError(
                f"collection note contains {REFUSED_CATEGORIES[category]} "
                f"(U+{ord(ch):04X} at position {i + 1}); use visible characters only"
            )
    text = unicodedata.normalize("NFC", note).strip()
    if len(text) > MAX_NOTE:
        raise CollectionError(f"collection note is {len(text)} characters (at most {MAX_NOTE})")
    return text


def check_ids(survey: Survey, object_ids: Iterable[object]) -> tuple[str, ...]:
    """``object_ids`` as text, duplicates dropped (first kept); each must be in ``survey``."""
    ids = tuple(dict.fromkeys(str(i) for i in object_ids))
    if not ids:
        raise CollectionError("a collection needs at least one object")
    if len(ids) > MAX_OBJECTS:
        raise CollectionError(
            f"a collection holds at most {MAX_OBJECTS:,} objects, got {len(ids):,}"
        )
    for object_id in ids:
        try:
            survey.index_of(object_id)
        except SurveyError as exc:
            raise CollectionError(str(exc)) from None
    return ids


def _who(by: Account, user: str | None) -> str:
    """The name acted under: the login, else (no authentication) the name the user gave."""
    return validate_user_name(by.name if by.name is not None else (user or "anonymous"))


def create(
    survey: Survey,
    name: object,
    object_ids: Iterable[object],
    *,
    by: Account,
    user: str | None = None,
    note: object = "",
    kind: str = "selection",
    engine: Engine | None = None,
) -> Collection:
    """Save a collection of ``survey`` owned by ``by`` (labeller or higher; ``user`` names the
    owner when the server has no logins). A name already used in the survey is refused."""
    require(by, "save_collection")
    if kind not in KINDS:
        raise CollectionError(f"unknown collection kind {kind!r} (kinds: {', '.join(KINDS)})")
    row = {
        "survey": survey.name,
        "name": check_name(name),
        "note": check_note(note),
        "kind": kind,
        "owner": _who(by, user),
        "object_ids": json.dumps(check_ids(survey, object_ids)),
        "created": datetime.now(UTC),
    }
    try:
        with (engine or engine_for()).begin() as conn:
            new_id = conn.execute(sa.insert(collections).values(**row)).inserted_primary_key[0]
    except sa.exc.IntegrityError:
        raise CollectionError(
            f"survey {survey.name} already has a collection named {row['name']!r}; "
            "choose another name"
        ) from None
    return _collection({**row, "id": int(new_id)})


def list_collections(survey: str, *, engine: Engine | None = None) -> list[Collection]:
    """The collections of ``survey``, newest first."""
    name = _survey(survey)
    query = (
        sa.select(collections)
        .where(collections.c.survey == name)
        .order_by(collections.c.created.desc(), collections.c.id.desc())
    )
    with (engine or engine_for()).connect() as conn:
        return [_collection(r._mapping) for r in conn.execute(query)]


def get(survey: str, name: object, *, engine: Engine | None = None) -> Collection:
    """The collection ``name`` of ``survey``; :class:`CollectionError` when there is none."""
    survey_name, key = _survey(survey), check_name(name)
    query = sa.select(collections).where(
        collections.c.survey == survey_name, collections.c.name == key
    )
    with (engine or engine_for()).connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise CollectionError(f"survey {survey_name} has no collection named {key!r}")
    return _collection(row._mapping)


def delete(
    survey: str,
    name: object,
    *,
    by: Account,
    user: str | None = None,
    engine: Engine | None = None,
) -> None:
    """Delete a collection: its owner (labeller or higher) or a curator."""
    found = get(survey, name, engine=engine)
    if _who(by, user) == found.owner:
        require(by, "save_collection")
    else:
        require(by, "delete_collection")
    with (engine or engine_for()).begin() as conn:
        conn.execute(sa.delete(collections).where(collections.c.id == found.id))


def rows_of(survey: Survey, collection: Collection) -> np.ndarray:
    """Row numbers of the collection's objects in ``survey``, in the saved order (ids no longer
    in the survey, after it was re-ingested, are dropped)."""
    rows = []
    for object_id in collection.object_ids:
        try:
            rows.append(survey.index_of(object_id))
        except SurveyError:
            continue
    return np.asarray(rows, dtype=np.int64)


def table(survey: Survey, collection: Collection) -> pd.DataFrame:
    """Catalog rows of the collection (export): ``rank`` (saved order), ``index``, catalog."""
    rows = survey.catalog_rows(rows_of(survey, collection))
    rows.insert(0, "rank", np.arange(1, len(rows) + 1))
    rows.attrs["survey"] = survey.name
    return rows


def _survey(name: str) -> str:
    try:
        return validate_survey_name(name)
    except ValueError as exc:
        raise CollectionError(str(exc)) from None


def _collection(row: object) -> Collection:
    get_ = row.__getitem__  # type: ignore[attr-defined]
    return Collection(
        id=int(get_("id")),
        survey=get_("survey"),
        name=get_("name"),
        note=get_("note"),
        kind=get_("kind"),
        owner=get_("owner"),
        object_ids=tuple(json.loads(get_("object_ids"))),
        created=get_("created"),
    )
