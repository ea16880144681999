"""The stored validation split: stratified, stable, grown as labels arrive, never moved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.modelling.general import auto_crop
from backend.validation import stored_assignments, validation_split


def _labels(n: int, seed: int, missing: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, n, p=[0.7, 0.2, 0.08, 0.02])
    labels[rng.random(n) < missing] = -1
    return labels


def test_split_is_stratified_and_stored(home: Path) -> None:
    ids = np.array([f"o{i}" for i in range(2000)])
    labels = _labels(2000, 0)
    split = validation_split("demo", "class", ids, labels)
    assert set(split.val_rows).isdisjoint(split.train_rows)
    assert len(split.val_rows) + len(split.train_rows) == (labels >= 0).sum()
    for c in range(4):
        n_c = (labels == c).sum()
        assert abs((labels[split.val_rows] == c).sum() - 0.2 * n_c) <= 1
    assert split.path.is_file() and len(stored_assignments("demo", "class")) == split.n_new
    again = validation_split("demo", "class", ids, labels)
    assert again.n_new == 0 and np.array_equal(again.val_rows, split.val_rows)


def test_new_labels_grow_the_split_and_nothing_changes_sides(home: Path) -> None:
    ids = np.array([f"o{i}" for i in range(1000)])
    first = _labels(1000, 1, missing=0.8)
    split = validation_split("demo", "class", ids, first)
    more = first.copy()
    more[more < 0] = _labels(1000, 2, missing=0.0)[more < 0]
    more[split.val_rows[:5]] = (more[split.val_rows[:5]] + 1) % 4  # relabelled: stays in val
    grown = validation_split("demo", "class", ids, more)
    assert set(split.val_rows) <= set(grown.val_rows)
    assert set(split.train_rows) <= set(grown.train_rows)
    assert len(grown.val_rows) == pytest.approx(0.2 * len(ids), abs=6)


def test_a_rare_class_gets_a_validation_object_once_it_has_two(home: Path) -> None:
    ids = np.array(["a", "b", "c", "d", "e"])
    split = validation_split("demo", "class", ids, np.array([0, 0, 0, 1, 1]))
    assert {1} <= set(np.array([0, 0, 0, 1, 1])[split.val_rows])


def test_task_names_are_checked(home: Path) -> None:
    with pytest.raises(ValueError, match="task name"):
        validation_split("demo", "../x", np.array(["a"]), np.array([0]))


def test_auto_crop_finds_the_galaxies_in_large_cutouts() -> None:
    yy, xx = np.mgrid[:400, :400] - 199.5
    blob = np.exp(-(xx**2 + yy**2) / (2 * 12.0**2))
    sample = np.repeat(blob[None, None], 8, axis=0).repeat(3, axis=1)
    crop = auto_crop(sample, native=64)
    assert crop is not None and 64 <= crop <= 192
    assert auto_crop(sample[..., 168:232, 168:232], native=64) is None  # already native
