"""Labels fine-tune the encoder's backbone: a new encoder version, then its products.

:func:`finetune_encoder` continues the active encoder with :class:`models.finetune.LabelFineTuner`
(labels' cross entropy + NT-Xent as a regulariser) on the training part of the task's stored
validation split only, and registers the result as a new, inactive encoder version whose parent
is the encoder it started from. :func:`backend.active.loop.finetune_and_maybe_activate` then
embeds the survey with it, trains the classifier head on those embeddings, and switches the
encoder, classifier and products together only if the activation gate passes.

Batches are half labelled cutouts (repeated as needed) and half unlabelled ones, so 50 labels
already pull on every step. A task that is not mirror-symmetric (its schema says
``symmetries: {mirror: false}``, or ``flip=False``) trains without flips; a task whose mirror
image swaps classes (``symmetries: {mirror: {spiral_cw: spiral_acw}}``: ``mirror_pairs``)
trains a mirror-equivariant head (:mod:`models.mirror`), which is what makes the winding
direction learnable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from backend.modelling.common import Progress, load_model, resolve_version, training_pixels
from backend.registry import ModelRegistry, ModelVersion
from backend.survey import Survey, SurveyError


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, K) float32 targets; rows of unlabelled objects (-1) are all zero."""
    out = np.zeros((len(labels), n_classes), np.float32)
    rows = np.flatnonzero(labels >= 0)
    out[rows, labels[rows]] = 1.0
    return out


RECIPES = {
    "labels": "labels only",
    "labels+supcon": "labels + supervised contrastive",
    "labels+ssl": "labels + NT-Xent",
}
DEFAULT_RECIPE = "labels+ssl"


def balanced_rows(
    labelled: np.ndarray, unlabelled: np.ndarray, seed: int, min_rows: int = 2048
) -> np.ndarray:
    """Row indices in which labelled rows make about half: repeated labelled rows followed by
    as many unlabelled ones (the sampler shuffles them)."""
    rng = np.random.default_rng(seed)
    n = max(len(labelled), min(len(unlabelled), max(min_rows // 2, len(labelled))))
    reps = int(np.ceil(n / max(len(labelled), 1)))
    lab = np.tile(labelled, reps)[:n]
    unl = rng.choice(unlabelled, min(n, len(unlabelled)), replace=False) if len(unlabelled) else []
    return np.concatenate([lab, np.asarray(unl, dtype=np.int64)]).astype(np.int64)


def finetune_encoder(
    survey_name: str,
    labels: np.ndarray,
    classes: list[str],
    train_rows: np.ndarray,
    *,
    encoder_version: str | None = None,
    steps: int = 300,
    batch_size: int | None = None,
    lr: float = 3e-4,
    ssl_weight: float | None = None,
    flip: bool = True,
    seed: int = 0,
    task: str = "class",
    progress: Progress | None = None,
    progress_bar: bool = True,
    mirror_pairs: list[tuple[str, str]] | tuple = (),
    soft_targets: np.ndarray | None = None,
    recipe: str | None = None,
) -> ModelVersion:
    """Fine-tune the survey's encoder on ``labels`` at ``train_rows``; register (inactive).

    ``soft_targets`` (N, K): class distributions (vote fractions) that replace the one-hot
    target of the training rows where they are non-zero; rows of the validation part (labelled
    rows outside ``train_rows``) are never trained on, whatever their votes.

    Recipes (``None`` picks the task's default): a morphology task trains on batches of 128,
    half unlabelled, with NT-Xent (``ssl_weight`` 0.5) and an MLP head. A mirror-equivariant
    task (``mirror_pairs``, e.g. spiral winding) learns a faint signal that the regulariser
    drowns: it trains on its labels only (batches of 64, ``ssl_weight`` 0), with zoom 0.1 and
    a linear head. On sdss_gz1 cw/acw (300 steps) that recipe gave 0.82 accuracy; adding back
    any one of NT-Xent 0.5, the unlabelled half, or zoom 0.3 with the MLP head gave 0.56-0.66
    (docs/results.md)."""
    from backend.modelling.common import device
    from models import ArrayDataset, AugmentConfig, TrainConfig, fit, seed_everything
    from models.contrastive import SimCLREncoder
    from models.finetune import LabelFineTuner
    from models.mirror import mirror_permutation

    survey = Survey.open(survey_name)
    registry = ModelRegistry()
    parent = resolve_version(registry, survey.name, "encoder", encoder_version)
    encoder = load_model(parent)
    if not isinstance(encoder, SimCLREncoder):
        raise SurveyError(
            f"encoder {parent.version} ({parent.config.get('kind')}) cannot be fine-tuned here: "
            "only LatentSky's own contrastive encoders are"
        )
    labels = np.asarray(labels, dtype=np.int64)
    train_rows = np.asarray(train_rows, dtype=np.int64)
    train_labels = labels[train_rows]
    if len(np.unique(train_labels[train_labels >= 0])) < 2:
        raise SurveyError(f"fine-tuning {survey.name} needs labels of at least two classes")
    seed_everything(seed)
    pixels = training_pixels(survey)
    targets = one_hot(np.where(np.isin(np.arange(len(labels)), train_rows), labels, -1),
                      len(classes))  # fmt: skip
    held = np.flatnonzero(labels >= 0)  # other labelled objects (validation) are left out
    n_soft = 0
    if soft_targets is not None:
        soft = np.asarray(soft_targets, np.float32)
        if soft.shape != targets.shape:
            raise SurveyError(f"soft targets of shape {soft.shape}, expected {targets.shape}")
        validation = np.setdiff1d(held, train_rows)
        use = soft.sum(axis=1) > 0
        use[validation] = False
        targets[use] = soft[use]
        extra = np.setdiff1d(np.flatnonzero(use), train_rows)  # votes but no hard label
        train_rows = np.concatenate([train_rows, extra]).astype(np.int64)
        held = np.union1d(held, extra)
        n_soft = int(use.sum())
    unlabelled = np.setdiff1d(np.arange(len(labels)), held)
    rows = balanced_rows(train_rows, unlabelled, seed)
    counts = np.bincount(train_labels, minlength=len(classes)).astype(np.float64)
    weights = (counts.sum() / np.maximum(counts, 1) / len(classes)).tolist()
    base_aug = AugmentConfig.from_dict(encoder.augmenter.config)
    try:
        perm = mirror_permutation(classes, mirror_pairs) if mirror_pairs else None
    except ValueError as exc:
        raise SurveyError(f"survey {survey.name}, task {task}: {exc}") from exc
    recipe = recipe or ("labels" if perm is not None else DEFAULT_RECIPE)
    if recipe not in RECIPES:
        raise SurveyError(f"unknown fine-tune recipe {recipe!r}; choose from {sorted(RECIPES)}")
    focused = recipe in ("labels", "labels+supcon")  # labels only (see the docstring)
    ssl_weight = (0.0 if focused else 0.5) if ssl_weight is None else float(ssl_weight)
    batch_size = (64 if focused else 128) if batch_size is None else int(batch_size)
    if focused:
        rows = train_rows
    augment = replace(base_aug, flip=bool(flip and base_aug.flip and perm is None))
    if perm is not None:
        augment = replace(augment, zoom=min(augment.zoom, 0.1))
    model = LabelFineTuner(
        encoder,
        len(classes),
        ssl_weight=ssl_weight,
        augment=augment,
        class_weights=weights,
        mirror_permutation=perm,
        hidden=() if focused else (256,),
        supcon_weight=1.0 if recipe == "labels+supcon" else 0.0,
    )
    cfg = TrainConfig(
        max_steps=steps, batch_size=batch_size, lr=lr, seed=seed, block_size=1,
        warmup_fraction=0.1, progress_bar=progress_bar, device=device(),
    )  # fmt: skip
    result = fit(model, ArrayDataset(pixels, targets, rows=rows), cfg, progress=progress)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return registry.save(
        "encoder", state, encoder.config, survey=survey.name,
        metrics={"loss": result.train_loss},
        training={
            "survey": survey.name, "n_objects": len(survey), "init": "finetune",
            "task": task, "classes": list(classes), "n_labelled_train": len(train_rows),
            "class_counts": dict(zip(classes, counts.astype(int).tolist(), strict=True)),
            "flip": bool(augment.flip), "ssl_weight": ssl_weight, "batch_size": batch_size,
            "recipe": RECIPES[recipe] + (", mirror-equivariant" if perm is not None else ""),
            "mirror_pairs": [list(p) for p in mirror_pairs], "n_soft_targets": n_soft,
            "train": cfg.to_dict(), "result": result.to_dict(),
            "budget": {"planned_steps": result.planned_steps, "steps": result.steps,
                       "stopped": result.stopped},
        },
        parent=parent.version,
    )  # fmt: skip


def finetune_summary(version: ModelVersion) -> dict[str, Any]:
    training = version.meta.get("training", {})
    keys = ("task", "n_labelled_train", "flip", "mirror_pairs", "budget")
    return {k: training.get(k) for k in keys}
