"""The fine-tune's recipe: which one a task gets, its class-balanced batches, its flips."""

from __future__ import annotations

import numpy as np
import pytest

from backend.modelling.finetune import (
    SUPERVISED_MIN_LABELS,
    default_recipe,
    sqrt_balanced_rows,
    task_augment,
)
from models.augment import AugmentConfig


def test_many_labels_get_the_supervised_recipe_few_keep_the_regulariser() -> None:
    assert default_recipe(SUPERVISED_MIN_LABELS, mirror_equivariant=False) == "supervised"
    assert default_recipe(SUPERVISED_MIN_LABELS - 1, mirror_equivariant=False) == "labels+ssl"
    assert default_recipe(SUPERVISED_MIN_LABELS, mirror_equivariant=True) == "supervised"
    assert default_recipe(SUPERVISED_MIN_LABELS - 1, mirror_equivariant=True) == "labels"


def test_batches_are_square_root_balanced_and_the_loss_weights_balance_them() -> None:
    labels = np.full(1200, -1, np.int64)
    labels[:900], labels[900:1000], labels[1000:1004] = 0, 1, 2  # 900 / 100 / 4
    train_rows = np.arange(1004)
    rows, weights = sqrt_balanced_rows(train_rows, labels, seed=0)
    assert len(rows) == len(train_rows) and np.isin(rows, train_rows).all()
    quota = np.bincount(labels[rows], minlength=3)
    assert quota / quota.sum() == pytest.approx(np.array([30, 10, 2]) / 42, abs=1e-3)
    assert set(rows[labels[rows] == 2]) == {1000, 1001, 1002, 1003}  # the rare class repeated
    assert weights.mean() == pytest.approx(1.0)
    per_class = quota * weights  # expected share of the loss per class: equal
    assert per_class == pytest.approx(np.full(3, per_class[0]))


def test_a_mirror_symmetric_task_flips_even_if_the_encoder_never_did() -> None:
    base = AugmentConfig.from_dict({**AugmentConfig.contrastive().to_dict(), "flip": False})
    assert task_augment(base, flip=True, mirror_equivariant=False).flip is True
    assert task_augment(base, flip=False, mirror_equivariant=False).flip is False
    winding = task_augment(
        AugmentConfig.from_dict({**base.to_dict(), "flip": True, "zoom": 0.3}),
        flip=True, mirror_equivariant=True,
    )  # fmt: skip
    assert winding.flip is False and winding.zoom == pytest.approx(0.1)
