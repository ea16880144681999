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
    "supervised": "labels only, square-root class-balanced batches, label smoothing, lr 1e-3",
}
DEFAULT_RECIPE = "labels+ssl"
SUPERVISED_MIN_LABELS = 1000  # labelled training objects from which "supervised" is the default
RECIPE_STEPS = {"supervised": 2000}  # default budgets; other recipes 300 steps
RECIPE_LR = {"supervised": 1e-3}  # other recipes 3e-4
LABEL_SMOOTHING = 0.1
HEAD_FIT_MAX_ROWS = 10_000  # training rows the warm head is fitted on (a random subset above)


def default_recipe(n_train: int, mirror_equivariant: bool) -> str:
    """The recipe a task gets when none is asked for (see :func:`finetune_encoder`)."""
    if n_train >= SUPERVISED_MIN_LABELS:
        return "supervised"
    return "labels" if mirror_equivariant else DEFAULT_RECIPE


def task_augment(base: Any, *, flip: bool, mirror_equivariant: bool) -> Any:
    """The fine-tune's augmentations: the encoder's own, with flips exactly when the task is
    mirror-symmetric (``flip``), even if the encoder's self-supervised training did not flip
    (general-v1 keeps winding information; a morphology task does not need it); a
    mirror-equivariant task never flips and zooms at most 10%."""
    augment = replace(base, flip=bool(flip and not mirror_equivariant))
    if mirror_equivariant:
        augment = replace(augment, zoom=min(augment.zoom, 0.1))
    return augment


def sqrt_balanced_rows(
    train_rows: np.ndarray, labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows resampled so each class appears in proportion to the square root of its
    count (rare classes repeated, common ones subsampled; as many rows as before), and the
    per-class loss weights (mean 1) that make the expected loss class-balanced."""
    rng = np.random.default_rng(seed)
    y = labels[train_rows]
    classes, counts = np.unique(y, return_counts=True)
    share = np.sqrt(counts) / np.sqrt(counts).sum()
    quota = np.maximum(1, np.round(share * len(train_rows))).astype(int)
    parts = []
    for c, q in zip(classes, quota, strict=True):
        members = train_rows[y == c]
        reps = int(np.ceil(q / len(members)))
        parts.append(rng.permutation(np.tile(members, reps))[:q])
    weights = np.zeros(int(labels.max()) + 1, np.float64)
    weights[classes] = 1.0 / quota
    weights[classes] /= weights[classes].mean()
    return np.concatenate(parts).astype(np.int64), weights


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
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    ssl_weight: float | None = None,
    flip: bool = True,
    seed: int = 0,
    task: str = "class",
    progress: Progress | None = None,
    progress_bar: bool = True,
    mirror_pairs: list[tuple[str, str]] | tuple = (),
    soft_targets: np.ndarray | None = None,
    recipe: str | None = None,
    warm_head: bool | None = None,
) -> ModelVersion:
    """Fine-tune the survey's encoder on ``labels`` at ``train_rows``; register (inactive).

    ``soft_targets`` (N, K): class distributions (vote fractions) that replace the one-hot
    target of the training rows where they are non-zero; rows of the validation part (labelled
    rows outside ``train_rows``) are never trained on, whatever their votes.

    Recipes (``None`` picks the task's default): a morphology task with at least
    ``SUPERVISED_MIN_LABELS`` training labels trains ``supervised``: labels only, batches of 64
    drawn square-root class-balanced with loss weights that make them balanced, label
    smoothing 0.1, lr 1e-3, a linear head, flips when the task is mirror-symmetric, 2,000
    steps (a mirror-equivariant task keeps its equivariant head and no flips). On sdss_gz1
    (5,331 labels) it lifted precision@10 of spirals from 0.41 to 0.54-0.57 and of mergers
    from 0.10 to 0.26-0.27 over the regularised recipe (docs/results.md).
    With fewer labels a morphology task trains on batches of 128,
    half unlabelled, with NT-Xent (``ssl_weight`` 0.5) and an MLP head. A mirror-equivariant
    task (``mirror_pairs``, e.g. spiral winding) learns a faint signal that the regulariser
    drowns: it trains on its labels only (batches of 64, ``ssl_weight`` 0), with zoom 0.1 and
    a linear head. On sdss_gz1 cw/acw (300 steps) that recipe gave 0.82 accuracy; adding back
    any one of NT-Xent 0.5, the unlabelled half, or zoom 0.3 with the MLP head gave 0.56-0.66
    (docs/results.md).

    ``warm_head`` fits the head on the frozen encoder's features of the training rows before
    the backbone moves (:meth:`models.finetune.LabelFineTuner.fit_head`): with a random head,
    20 steps of ``supervised`` at the 1,000-label switch cut the S1 loop's accuracy by 0.026;
    from a fitted head they gain. ``None`` (default) does so unless the task is mirror-
    equivariant: frozen features that cannot tell a mirror pair apart give a head fitted to
    noise (sdss_gz1 cw/acw, 400 steps: 0.794 accuracy from it, 0.853 from a random head;
    docs/results.md, issue 9)."""
    from backend.modelling.common import device
    from models import ArrayDataset, AugmentConfig, TrainConfig, fit, seed_everything
    from models.contrastive import SimCLREncoder
    from models.device import pick_device
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
    recipe = recipe or default_recipe(len(train_rows), perm is not None)
    if recipe not in RECIPES:
        raise SurveyError(f"unknown fine-tune recipe {recipe!r}; choose from {sorted(RECIPES)}")
    steps = RECIPE_STEPS.get(recipe, 300) if steps is None else int(steps)
    lr = RECIPE_LR.get(recipe, 3e-4) if lr is None else float(lr)
    focused = recipe in ("labels", "labels+supcon", "supervised")  # labels only (docstring)
    ssl_weight = (0.0 if focused else 0.5) if ssl_weight is None else float(ssl_weight)
    batch_size = (64 if focused else 128) if batch_size is None else int(batch_size)
    if focused:
        rows = train_rows
    if recipe == "supervised":
        rows, balanced = sqrt_balanced_rows(train_rows, labels, seed)
        weights = np.ones(len(classes))
        weights[: len(balanced)] = np.where(balanced > 0, balanced, 1.0)
        weights = weights.tolist()
        hard = targets.max(axis=1) == 1.0  # one-hot rows (vote fractions stay as they are)
        targets[hard] = targets[hard] * (1 - LABEL_SMOOTHING) + LABEL_SMOOTHING / len(classes)
    augment = task_augment(base_aug, flip=flip, mirror_equivariant=perm is not None)
    model = LabelFineTuner(
        encoder,
        len(classes),
        ssl_weight=ssl_weight,
        augment=augment,
        class_weights=weights,
        mirror_permutation=perm,
        hidden=() if focused else (256,),
        supcon_weight=1.0 if recipe == "labels+supcon" else 0.0,
        views=1 if recipe == "supervised" else 2,  # one view: half the cost of a step
    )
    head_loss = None
    if warm_head is None:
        warm_head = perm is None
    if warm_head:
        fit_rows = np.unique(train_rows)
        if len(fit_rows) > HEAD_FIT_MAX_ROWS:
            rng = np.random.default_rng(seed)
            fit_rows = np.sort(rng.choice(fit_rows, HEAD_FIT_MAX_ROWS, replace=False))
        model.to(pick_device(device()))
        head_loss = model.fit_head(pixels, targets[fit_rows], fit_rows)
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
            "head": ("fitted on the frozen features first" if warm_head else "random"),
            "head_fit_loss": head_loss,
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
