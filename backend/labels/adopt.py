"""A survey's label classes from the catalog column its classifier is trained on.

Without its own schema a survey labels with ``default.yaml`` (the demo's morphology). A survey
prepared on another column (sdss_gz1's ``gz1_label``: spiral_cw, merger, dont_know, ...) would
then offer buttons that can never teach or correct its classifier, so ``prepare`` and ``train
classifier`` write the column's classes, in the classifier's order, as the survey's own schema.
A schema the survey already has (written by a user, adopted in the app, shipped) is never
replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.atomic import atomic_create
from backend.labels.schema import (
    SchemaError,
    load_schema,
    make_schema,
    own_schema_path,
    read_schema,
    schema_text,
    user_schema_dir,
)
from backend.survey.meta import validate_survey_name

HEADER = """Written by LatentSky from the catalog column {column!r}: the classes its classifier learns.
Edit freely: prepare never rewrites it. Declare symmetries by hand, e.g. for spiral winding:
  symmetries: {{mirror: {{spiral_cw: spiral_acw}}}}"""


@dataclass(frozen=True)
class Adoption:
    """What :func:`adopt_column_classes` did: the schema file it wrote (None: none) and why."""

    path: Path | None
    message: str


def adopt_column_classes(survey: str, classes: Sequence[str], column: str) -> Adoption:
    """Make ``classes`` (of catalog ``column``, in the classifier's order) the survey's label
    classes when it has no schema of its own and the default lacks some of them. Written
    atomically, and only if no schema appeared meanwhile; symmetries are left undeclared."""
    classes = [str(c) for c in classes]
    own = own_schema_path(survey)
    if own is not None:
        missing = [c for c in classes if c not in read_schema(own).by_name]
        if not missing:
            return Adoption(None, f"label classes: {survey} keeps its own label schema ({own})")
        return Adoption(
            None,
            f"label classes: {survey} keeps its own label schema ({own}), which lacks "
            f"{', '.join(missing)} of {column!r}: labels given in the app cannot teach them "
            f"(edit it, or `python -m backend labels schema --survey {survey} --classes ...`)",
        )
    if all(c in load_schema(survey).by_name for c in classes):
        return Adoption(None, f"label classes: the default schema holds every class of {column!r}")
    try:
        schema = make_schema(classes, description=f"classes of the catalog column {column}")
    except SchemaError as exc:
        return Adoption(
            None,
            f"label classes: kept the default schema, {column!r} cannot be one ({exc}; classes: "
            f"{', '.join(classes)}); labels given in the app cannot teach its classifier",
        )
    path = user_schema_dir() / f"{validate_survey_name(survey)}.yaml"
    text = schema_text(schema, HEADER.format(column=column), declared_only=True)
    if not atomic_create(path, lambda tmp: tmp.write_text(text)):  # someone saved one meanwhile
        return Adoption(None, f"label classes: {survey} keeps its own label schema ({path})")
    read_schema(path)  # what was written reads back
    keys = f"{schema.classes[0].key}-{schema.classes[-1].key}"
    return Adoption(
        path,
        f"label classes: {survey} now labels with the classes of {column!r} "
        f"({', '.join(schema.names)}; keys {keys}), written to {path}",
    )


def covers(survey: str, classes: Sequence[str]) -> bool:
    """Whether the survey's schema (its own, else the default) holds every one of ``classes``."""
    by_name = load_schema(survey).by_name
    return all(str(c) in by_name for c in classes)
