"""Labels of an evaluation: a catalog column's classes, merged (``--merge``), and rare classes.

Pure functions on pandas/numpy; errors are :class:`EvaluationError` (one ``error:`` line, exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.errors import UserError


class EvaluationError(UserError):
    """Bad evaluation input (missing column, unknown class, too few classes...)."""


@dataclass(frozen=True)
class EvalLabels:
    """Class index per survey row (-1: unlabelled) after merging, and the merged class names."""

    labels: np.ndarray
    classes: list[str]
    merge: dict[str, str]  # original class -> merged class (only the merged ones)
    original_counts: dict[str, int]

    def name_of(self, original: str) -> str:
        return self.merge.get(original, original)


def parse_merge(specs: Iterable[str] | None) -> dict[str, str]:
    """``["a,b=ab", "c=d; e,f=ef"]`` -> ``{"a": "ab", "b": "ab", "c": "d", "e": "ef", "f": "ef"}``.

    Each spec is ``old1,old2,...=new``; several may be given in one string separated by ``;``.
    """
    mapping: dict[str, str] = {}
    for spec in specs or []:
        for part in str(spec).split(";"):
            part = part.strip()
            if not part:
                continue
            if part.count("=") != 1:
                raise EvaluationError(f"--merge {part!r}: use OLD1,OLD2=NEW")
            old, new = (s.strip() for s in part.split("="))
            sources = [s.strip() for s in old.split(",") if s.strip()]
            if not sources or not new:
                raise EvaluationError(f"--merge {part!r}: use OLD1,OLD2=NEW")
            for name in sources:
                if mapping.get(name, new) != new:
                    raise EvaluationError(
                        f"--merge: class {name!r} is merged into both {mapping[name]!r} and {new!r}"
                    )
                mapping[name] = new
    return mapping


def split_names(value: str | Sequence[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]`` (order kept, duplicates dropped)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def column_labels(
    catalog: pd.DataFrame, column: str, merge: dict[str, str] | None = None
) -> EvalLabels:
    """Class indices of a catalog column (sorted merged class names; empty/NaN -> -1)."""
    if column not in catalog.columns:
        shown = ", ".join(map(str, catalog.columns))
        raise EvaluationError(f"no catalog column {column!r} (columns: {shown})")
    merge = dict(merge or {})
    values = catalog[column]
    present = values.notna() & (values.astype(str).str.strip() != "")
    names = values[present].astype(str).str.strip()
    original = names.value_counts()
    unknown = sorted(set(merge) - set(original.index))
    if unknown:
        raise EvaluationError(
            f"--merge names classes not in column {column!r}: {', '.join(map(repr, unknown))} "
            f"(classes: {', '.join(map(str, sorted(original.index)))})"
        )
    merged = names.map(lambda c: merge.get(c, c))
    classes = sorted(merged.unique())
    if len(classes) < 2:
        raise EvaluationError(
            f"column {column!r} needs at least two classes after merging, found {classes}"
        )
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.full(len(values), -1, dtype=np.int64)
    labels[present.to_numpy()] = merged.map(lookup).to_numpy(np.int64)
    return EvalLabels(labels, classes, merge, {str(k): int(v) for k, v in original.items()})


def rare_classes(names: Sequence[str], labels: EvalLabels) -> list[str]:
    """Merged class names of ``names`` (original names are mapped through the merge)."""
    out: list[str] = []
    for name in names:
        merged = labels.name_of(name)
        if merged not in labels.classes:
            raise EvaluationError(
                f"--rare: unknown class {name!r} (classes: {', '.join(labels.classes)})"
            )
        if merged not in out:
            out.append(merged)
    return out
