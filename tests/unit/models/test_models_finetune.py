"""Fine-tuning the backbone on labels with NT-Xent as a regulariser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import ArrayDataset, AugmentConfig, BackboneConfig, SimCLREncoder, TrainConfig, fit
from models.finetune import LabelFineTuner, soft_cross_entropy

TINY = BackboneConfig(embedding_dim=16, stem_width=8, widths=(8, 16), strides=(2, 2))


def test_soft_cross_entropy_equals_hard_labels_for_one_hot_and_weights_rows() -> None:
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    assert torch.allclose(
        soft_cross_entropy(logits, one_hot), torch.nn.functional.cross_entropy(logits, labels)
    )
    weights = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(
        soft_cross_entropy(logits, one_hot, weights),
        torch.nn.functional.cross_entropy(logits, labels, weight=weights),
    )


def _mirror_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric 'L' shape and its mirror image: the class is the handedness."""
    rng = np.random.default_rng(seed)
    base = np.zeros((16, 16), np.float32)
    base[3:13, 5] = 1.0
    base[12, 5:11] = 1.0
    images, labels = [], []
    for i in range(n):
        img = base if i % 2 == 0 else base[:, ::-1]
        img = np.rot90(img, k=int(rng.integers(4)))
        images.append(np.stack([img] * 2) * 10 + rng.normal(0, 0.05, (2, 16, 16)))
        labels.append(i % 2)
    return np.asarray(images, np.float32), np.asarray(labels)


@pytest.mark.parametrize("flip", [False, True])
def test_a_task_without_flips_learns_handedness_and_one_with_flips_cannot(flip: bool) -> None:
    images, labels = _mirror_pairs(128)
    torch.manual_seed(0)
    encoder = SimCLREncoder(["a", "b"], backbone=TINY, augment=AugmentConfig.geometric())
    augment = AugmentConfig(rotation_deg=180.0, flip=flip, jitter_pixels=0)
    model = LabelFineTuner(encoder, 2, ssl_weight=0.2, augment=augment, hidden=(16,))
    targets = np.eye(2, dtype=np.float32)[labels]
    cfg = TrainConfig(max_steps=150, batch_size=32, lr=3e-3, progress_bar=False, device="cpu",
                      block_size=1)  # fmt: skip
    fit(model, ArrayDataset(images, targets), cfg)
    with torch.no_grad():
        accuracy = (model.eval()(torch.from_numpy(images)).argmax(1).numpy() == labels).mean()
    if flip:
        assert accuracy < 0.75  # a mirror-invariant task cannot tell the two apart
    else:
        assert accuracy > 0.9


def test_unlabelled_rows_only_train_the_contrastive_part() -> None:
    images, _ = _mirror_pairs(16)
    encoder = SimCLREncoder(["a", "b"], backbone=TINY)
    model = LabelFineTuner(encoder, 2, ssl_weight=0.0)
    batch = {"inputs": torch.from_numpy(images), "targets": torch.zeros(16, 2)}
    assert float(model.training_loss(batch)) == 0.0  # nothing labelled, no regulariser
    model.ssl_weight = 1.0
    assert float(model.training_loss(batch)) > 0.0


def test_one_view_per_cutout_learns_the_labels_and_refuses_paired_losses() -> None:
    images, labels = _mirror_pairs(128)
    torch.manual_seed(0)
    encoder = SimCLREncoder(["a", "b"], backbone=TINY, augment=AugmentConfig.geometric())
    augment = AugmentConfig(rotation_deg=180.0, flip=False, jitter_pixels=0)
    model = LabelFineTuner(encoder, 2, ssl_weight=0.0, augment=augment, hidden=(), views=1)
    targets = np.eye(2, dtype=np.float32)[labels]
    seen: list[int] = []
    model.encoder.backbone.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    cfg = TrainConfig(max_steps=150, batch_size=32, lr=3e-3, progress_bar=False, device="cpu",
                      block_size=1)  # fmt: skip
    fit(model, ArrayDataset(images, targets), cfg)
    assert seen[0] == 32  # one view of each cutout, not two
    with torch.no_grad():
        accuracy = (model.eval()(torch.from_numpy(images)).argmax(1).numpy() == labels).mean()
    assert accuracy > 0.9
    with pytest.raises(ValueError, match="one view"):
        LabelFineTuner(encoder, 2, ssl_weight=0.5, views=1)
