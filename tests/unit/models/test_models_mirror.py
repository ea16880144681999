"""Mirror-equivariant heads: a task whose mirror image swaps classes (spiral winding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import ArrayDataset, AugmentConfig, BackboneConfig, SimCLREncoder, TrainConfig, fit
from models.classifier import EmbeddingClassifier
from models.finetune import LabelFineTuner
from models.mirror import mirror, mirror_permutation

TINY = BackboneConfig(embedding_dim=16, stem_width=8, widths=(8, 16), strides=(2, 2))


def test_mirror_permutation_swaps_the_declared_pairs_only() -> None:
    classes = ["elliptical", "spiral_cw", "edge_on", "spiral_acw"]
    assert mirror_permutation(classes, [("spiral_cw", "spiral_acw")]) == [0, 3, 2, 1]
    assert mirror_permutation(classes, []) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("spiral_cw", "ring")], "no class 'ring'"),
        ([("spiral_cw", "spiral_cw")], "two different classes"),
        ([("spiral_cw", "spiral_acw"), ("spiral_cw", "elliptical")], "more than one"),
    ],
)
def test_mirror_permutation_names_a_bad_pair(pairs: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mirror_permutation(["elliptical", "spiral_cw", "spiral_acw"], pairs)


def test_the_fine_tuner_head_is_mirror_equivariant_by_construction() -> None:
    torch.manual_seed(0)
    encoder = SimCLREncoder(["a", "b"], backbone=TINY)
    model = LabelFineTuner(encoder, 3, hidden=(8,), mirror_permutation=[0, 2, 1]).eval()
    x = torch.randn(5, 2, 16, 16)
    with torch.no_grad():
        logits, mirrored = model(x), model(mirror(x))
    assert torch.allclose(mirrored, logits[:, [0, 2, 1]], atol=1e-5)
    assert not torch.allclose(logits[:, 1], logits[:, 2], atol=1e-3)  # it can still tell them


def _handed(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An 'L' and its mirror image, each at a random right-angle rotation, with a distractor
    (brightness) that is mirror-symmetric: the class is the handedness only."""
    rng = np.random.default_rng(seed)
    base = np.zeros((16, 16), np.float32)
    base[3:13, 5] = 1.0
    base[12, 5:11] = 1.0
    images, labels = [], []
    for i in range(n):
        img = np.rot90(base if i % 2 == 0 else base[:, ::-1], k=int(rng.integers(4)))
        img = img * rng.uniform(5, 15) + rng.normal(0, 0.05, (16, 16))
        images.append(np.stack([img, img]))
        labels.append(i % 2)
    return np.asarray(images, np.float32), np.asarray(labels)


def test_an_equivariant_fine_tune_learns_handedness_and_predicts_the_mirror_swapped() -> None:
    images, labels = _handed(128)
    torch.manual_seed(0)
    encoder = SimCLREncoder(["a", "b"], backbone=TINY, augment=AugmentConfig.geometric())
    augment = AugmentConfig(rotation_deg=180.0, flip=False, jitter_pixels=0)
    model = LabelFineTuner(encoder, 2, ssl_weight=0.2, augment=augment, hidden=(16,),
                           mirror_permutation=[1, 0])  # fmt: skip
    cfg = TrainConfig(max_steps=120, batch_size=32, lr=3e-3, progress_bar=False, device="cpu",
                      block_size=1)  # fmt: skip
    fit(model, ArrayDataset(images, np.eye(2, dtype=np.float32)[labels]), cfg)
    test_images, test_labels = _handed(64, seed=1)
    x = torch.from_numpy(test_images)
    with torch.no_grad():
        predicted = model.eval()(x).argmax(1).numpy()
        predicted_mirror = model(mirror(x)).argmax(1).numpy()
    assert (predicted == test_labels).mean() > 0.9
    assert (predicted_mirror == 1 - predicted).all()


def test_a_mirrored_embedding_classifier_permutes_its_predictions_when_halves_swap() -> None:
    torch.manual_seed(0)
    clf = EmbeddingClassifier(4, ["a", "cw", "acw"], hidden=(8,), mirror_permutation=[0, 2, 1])
    e, m = torch.randn(6, 4), torch.randn(6, 4)
    with torch.no_grad():
        logits = clf.eval()(torch.cat([e, m], 1))
        swapped = clf(torch.cat([m, e], 1))
        mc, mc_swapped = clf.mc_predict(torch.cat([e, m], 1)), clf.mc_predict(torch.cat([m, e], 1))
    assert torch.allclose(swapped, logits[:, [0, 2, 1]], atol=1e-5)
    assert torch.allclose(mc_swapped.probs, mc.probs[:, [0, 2, 1]], atol=1e-5)
    with pytest.raises(Exception, match=r"\(N, 8\) embeddings"):
        clf(e)
    again = EmbeddingClassifier.from_config(clf.config)
    assert again.mirror_permutation == [0, 2, 1] and again.row_width == 8
