"""Fine-tuning a contrastive encoder's backbone on labels, with NT-Xent as a regulariser.

:class:`LabelFineTuner` wraps a :class:`~models.contrastive.SimCLREncoder`: each batch gives two
augmented views of every cutout; the views of labelled cutouts train a classification head
(cross entropy against hard or soft targets: one-hot labels or vote fractions), and all views
keep the self-supervised NT-Xent loss (weight ``ssl_weight``), so a few hundred labels move the
representation towards the task without collapsing what it knew. Augmentations are the task's:
a task that is not mirror-symmetric (spiral winding) trains without flips, and a task whose
mirror swaps classes (cw <-> acw) gets a mirror-equivariant head (:mod:`models.mirror`).

Before the backbone moves, :meth:`LabelFineTuner.fit_head` can fit the head on the frozen
features (linear probe, then fine-tune), so a short fine-tune does not spend its steps, and the
features, undoing a random head.

Targets are (B, K) class distributions; a row of zeros is an unlabelled cutout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.augment import AugmentConfig, Augmenter
from models.classifier import MLPHead
from models.contrastive import SimCLREncoder, nt_xent_loss, supervised_contrastive_loss
from models.data import array_length, read_rows
from models.mirror import equivariant_logits, mirror


def soft_cross_entropy(logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
    """Cross entropy of ``logits`` (B, K) against class distributions ``targets`` (B, K);
    with class ``weights`` (K,), each row counts by its target's weight (weighted mean)."""
    targets = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-12)
    per_row = -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    if weights is None:
        return per_row.mean()
    w = targets @ weights.to(targets)
    return (per_row * w).sum() / w.sum().clamp_min(1e-12)


class LabelFineTuner(nn.Module):
    """Encoder + classification head trained together (see the module docstring)."""

    kind = "label_finetuner"

    def __init__(
        self,
        encoder: SimCLREncoder,
        n_classes: int,
        *,
        ssl_weight: float = 0.5,
        augment: AugmentConfig | None = None,
        hidden: tuple[int, ...] = (256,),
        dropout: float = 0.2,
        class_weights: list[float] | None = None,
        mirror_permutation: list[int] | None = None,
        supcon_weight: float = 0.0,
        views: int = 2,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"fine-tuning needs at least two classes, got {n_classes}")
        self.encoder = encoder
        if augment is not None:  # the task's symmetries
            encoder.augmenter = Augmenter(augment, encoder.input_channels)
        self.head = MLPHead(encoder.embedding_dim, n_classes, hidden, dropout)
        self.ssl_weight = float(ssl_weight)
        self.supcon_weight = float(supcon_weight)
        if views not in (1, 2) or (views == 1 and (ssl_weight > 0 or supcon_weight > 0)):
            raise ValueError(
                "one view per cutout only without NT-Xent and SupCon (they pair views)"
            )
        self.views = views
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        self.register_buffer("class_weights", weights, persistent=False)
        if mirror_permutation is not None and sorted(mirror_permutation) != list(range(n_classes)):
            raise ValueError(f"mirror permutation {mirror_permutation} of {n_classes} classes")
        self.mirror_permutation = None if mirror_permutation is None else list(mirror_permutation)

    def fit_head(
        self,
        images: Any,
        targets: Any,
        rows: np.ndarray | None = None,
        *,
        steps: int = 300,
        lr: float = 1e-2,
        chunk: int = 256,
    ) -> float:
        """Fit the head alone on the frozen backbone's features of raw cutouts ``images``
        (N, C, H, W; an array, memory map or zarr array, read ``chunk`` rows at a time) at
        ``rows`` (default all) against class distributions ``targets`` (len(rows), K):
        full-batch AdamW for ``steps`` steps, on the head's device. Returns the final loss.

        A fine-tune that starts from a fitted head (linear probe, then fine-tune) sends the
        backbone the labels' signal from its first step; a random head's large, arbitrary
        gradients instead distort the features, which a short fine-tune (a few dozen steps at
        lr 1e-3) does not recover from (docs/results.md, issue 9)."""
        rows = np.arange(array_length(images)) if rows is None else np.asarray(rows, np.int64)
        on = next(self.head.parameters()).device
        was_training = self.training
        self.eval()
        feats, mirrored = [], []
        with torch.no_grad():
            for i in range(0, len(rows), chunk):
                x = torch.as_tensor(np.asarray(read_rows(images, rows[i : i + chunk]), np.float32))
                z = self.encoder.network_input(x.to(on))
                feats.append(self.encoder.backbone(z).float())
                if self.mirror_permutation is not None:
                    mirrored.append(self.encoder.backbone(mirror(z)).float())
        h = torch.cat(feats)
        hm = torch.cat(mirrored) if mirrored else None
        t = torch.as_tensor(np.asarray(targets, np.float32), device=on)
        self.head.train()
        opt = torch.optim.AdamW(self.head.parameters(), lr=lr, weight_decay=1e-4)
        loss = h.new_zeros(())
        for _ in range(int(steps)):
            opt.zero_grad(set_to_none=True)
            logits = self.head(h)
            if hm is not None:
                logits = equivariant_logits(logits, self.head(hm), self.mirror_permutation)
            loss = soft_cross_entropy(logits, t, self.class_weights)
            loss.backward()
            opt.step()
        self.train(was_training)
        return float(loss.detach())

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, K) of raw cutouts (no augmentation)."""
        enc = self.encoder
        enc.check_input(x)
        z = enc.network_input(x)
        return self._logits(z, enc.backbone(z))

    def _logits(self, z: Tensor, h: Tensor) -> Tensor:
        """Head logits of normalised inputs ``z`` with backbone features ``h``; mirror-
        equivariant when the task's mirror swaps classes (one more backbone pass)."""
        if self.mirror_permutation is None:
            return self.head(h)
        mirrored = self.head(self.encoder.backbone(mirror(z)))
        return equivariant_logits(self.head(h), mirrored, self.mirror_permutation)

    def training_loss(self, batch: dict[str, Any]) -> Tensor:
        enc = self.encoder
        x = batch["inputs"]
        views = enc.augmented_views(x) if self.views == 2 else enc.augmented_view(x)
        h = enc.backbone(views)
        targets = batch["targets"].float()
        labelled = targets.sum(dim=1) > 0
        loss = h.new_zeros((), dtype=torch.float32)
        if bool(labelled.any()):
            both = torch.cat([labelled] * self.views)
            t = torch.cat([targets] * self.views)[both]
            logits = self._logits(views[both], h[both])
            loss = loss + soft_cross_entropy(logits, t, self.class_weights)
            if self.supcon_weight > 0:  # the embedding itself: neighbours share the class
                classes = t.argmax(dim=1)
                loss = loss + self.supcon_weight * supervised_contrastive_loss(
                    h[both], classes, enc.temperature, self.class_weights
                )
        if self.ssl_weight > 0:
            z1, z2 = enc.projector(h).chunk(2)
            loss = loss + self.ssl_weight * nt_xent_loss(z1, z2, enc.temperature)
        return loss
