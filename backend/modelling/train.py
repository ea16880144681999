"""Train each model kind on a survey, register the version and (by default) activate it.

Every function returns the new :class:`ModelVersion`; metrics measured on held-out objects are
stored with it. A failure raises before anything is registered, so the active model is never
replaced by a half-trained one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from backend.modelling import metrics
from backend.modelling.common import (
    Progress,
    check_bands,
    device,
    load_model,
    resolve_version,
    training_pixels,
)
from backend.modelling.infer import classifier_inputs
from backend.registry import ModelRegistry, ModelVersion
from backend.survey import Survey, SurveyError

DEFAULT_TARGETS = ("redshift", "sersic_n", "half_light_radius", "ellipticity")
LOG_TARGETS = {"redshift", "sersic_n", "half_light_radius"}  # positive, heavy-tailed
MC_SAMPLES = 30  # MC-dropout passes behind reported probabilities (and their calibration)
CALIBRATION_ROWS_PER_CLASS = 20  # class biases are fitted only on at least this many rows per class


def _split(dataset: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """Random (train, held-out) split by contiguous blocks (chunk-friendly reads)."""
    block = max(1, min(64, len(dataset) // 50))
    return dataset.split(fraction, block_size=block, seed=seed)


def _seed(seed: int) -> None:
    """Seed torch, numpy and random before a model is built (weights are set at build)."""
    from models import seed_everything

    seed_everything(seed)


def _train_config(**overrides: Any) -> Any:
    from models import TrainConfig

    return TrainConfig(device=device(), **{k: v for k, v in overrides.items() if v is not None})


def _finish(
    registry: ModelRegistry,
    kind: str,
    model: Any,
    survey: Survey,
    *,
    metrics_: dict[str, Any],
    training: dict[str, Any],
    parent: str | None,
    activate: bool,
) -> ModelVersion:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    version = registry.save(
        kind,
        state,
        model.config,
        survey=survey.name,
        metrics=metrics_,
        training={"survey": survey.name, "n_objects": len(survey), **training},
        parent=parent,
    )
    if activate:
        registry.set_active(survey.name, kind, version.version)
    return version


def train_encoder(
    survey_name: str,
    *,
    init: str = "general",
    steps: int | None = None,
    epochs: int = 20,
    max_seconds: float | None = None,
    batch_size: int = 256,
    embedding_dim: int = 128,
    input_pool: int = 2,
    lr: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    progress_bar: bool = True,
    activate: bool = True,
) -> ModelVersion:
    """SimCLR encoder on all objects of the survey (self-supervised: no labels).

    ``init="general"`` (default when the shipped general encoder is present) continues the
    self-supervised training of :mod:`backend.modelling.general`'s pretrained encoder on this
    survey, through the survey's input adapter; ``init="scratch"`` starts from random weights
    (per-band input, ``input_pool`` averaging the cutout 2x2 before the stem). The budget is
    ``steps`` optimiser steps (else ``epochs``); ``max_seconds`` only caps a run and is
    reported in the version's training record when it cut training short. ``lr`` defaults to
    3e-3 from scratch and 5e-4 when continuing from the general encoder.
    """
    from backend.modelling import general
    from models import ArrayDataset, AugmentConfig, BackboneConfig, SimCLREncoder, fit
    from models.normalize import fit_normalization

    if init not in ("general", "scratch"):
        raise SurveyError(f"encoder init must be 'general' or 'scratch', not {init!r}")
    survey = Survey.open(survey_name)
    _seed(seed)
    pixels = training_pixels(survey)
    parent = None
    if init == "general" and general.general_available():
        model = general.general_encoder_for(survey)
        parent = f"general:{general.DEFAULT_GENERAL}"
        lr = lr or 5e-4
    else:
        model = SimCLREncoder(
            survey.bands,
            backbone=BackboneConfig(embedding_dim=embedding_dim, input_pool=input_pool),
            normalization=fit_normalization(pixels, survey.bands, seed=seed),
            augment=(
                AugmentConfig.composite()  # colour pictures: no reddening of R, G, B
                if general.is_colour_pictures(survey)
                else AugmentConfig.contrastive(survey.meta.pixel_scale)
            ),
        )
        init, lr = "scratch", lr or 3e-3
    if steps == 0 and init == "general":  # the general encoder as shipped (zero-shot)
        return _finish(
            ModelRegistry(), "encoder", model, survey, metrics_={},
            training={"labels": None, "init": init, "budget": {"steps": 0}},
            parent=parent, activate=activate,
        )  # fmt: skip
    train, val = _split(ArrayDataset(pixels), 0.1, seed)
    cfg = _train_config(
        max_steps=steps, epochs=epochs, max_seconds=max_seconds, batch_size=batch_size,
        seed=seed, progress_bar=progress_bar, lr=lr,
    )  # fmt: skip
    result = fit(model, train, cfg, val=val, progress=progress)
    return _finish(
        ModelRegistry(), "encoder", model, survey,
        metrics_={"loss": result.train_loss, "val_loss": result.val_loss},
        training={
            "train": cfg.to_dict(), "result": result.to_dict(), "labels": None, "init": init,
            "budget": budget_record(result),
        },
        parent=parent, activate=activate,
    )  # fmt: skip


def budget_record(result: Any) -> dict[str, Any]:
    """Steps planned and run, and whether the wall-clock cap cut the run short."""
    record = {
        "planned_steps": result.planned_steps, "steps": result.steps, "stopped": result.stopped,
        "seconds": round(result.seconds, 1),
    }  # fmt: skip
    if result.stopped == "time_budget":
        record["warning"] = (
            f"the wall-clock cap stopped training after {result.steps} of "
            f"{result.planned_steps} steps"
        )
    return record


def train_autoencoder(
    survey_name: str,
    *,
    steps: int | None = None,
    epochs: int = 20,
    max_seconds: float | None = None,
    batch_size: int = 256,
    latent_dim: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
    progress_bar: bool = True,
    activate: bool = True,
) -> ModelVersion:
    """Convolutional autoencoder; its reconstruction error is an anomaly score.

    Per-band input at the native size (64 px: larger cutouts are cropped to their galaxies and
    resampled by the input adapter), so a step costs the same whatever the survey's cutouts.
    """
    from backend.modelling import general
    from models import ArrayDataset, AugmentConfig, ConvAutoencoder, fit, reconstruction_errors

    survey = Survey.open(survey_name)
    _seed(seed)
    pixels = training_pixels(survey)
    _, h, w = survey.image_shape
    adapter = general.survey_adapter(survey, mode="bands")
    model = ConvAutoencoder(
        survey.bands,
        image_size=(h, w),
        latent_dim=latent_dim,
        normalization=adapted_normalization(pixels, adapter, seed),
        augment=AugmentConfig.geometric(),
        adapter=adapter,
    )
    train, val = _split(ArrayDataset(pixels), 0.1, seed)
    cfg = _train_config(
        max_steps=steps, epochs=epochs, max_seconds=max_seconds, batch_size=batch_size,
        seed=seed, progress_bar=progress_bar,
    )  # fmt: skip
    result = fit(model, train, cfg, val=val, progress=progress)
    errors = reconstruction_errors(model, pixels[np.sort(val.rows)], device=device())
    return _finish(
        ModelRegistry(), "autoencoder", model, survey,
        metrics_={
            "loss": result.train_loss,
            "val_loss": result.val_loss,
            "recon_error_median": float(np.median(errors)),
            "recon_error_p99": float(np.percentile(errors, 99)),
        },
        training={
            "train": cfg.to_dict(), "result": result.to_dict(), "labels": None,
            "budget": budget_record(result),
        },
        parent=None, activate=activate,
    )  # fmt: skip


def adapted_normalization(pixels: Any, adapter: Any, seed: int) -> Any:
    """Normalisation statistics of a sample of ``pixels`` as the adapter delivers them."""
    import torch

    from models.adapter import InputAdapter
    from models.normalize import fit_normalization

    n = len(pixels)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, 2048), replace=False))
    with torch.inference_mode():
        sample = InputAdapter(adapter)(torch.from_numpy(np.asarray(pixels[rows], np.float32)))
    return fit_normalization(sample.numpy(), adapter.channels, seed=seed)


def catalog_labels(survey: Survey, column: str) -> tuple[np.ndarray, list[str]]:
    """Integer labels (-1 where missing) and class names from a catalog column."""
    if column not in survey.catalog:
        raise SurveyError(
            f"survey {survey.name} has no catalog column {column!r} "
            f"(columns: {', '.join(map(str, survey.catalog.columns))})"
        )
    # distinct values first (hashed in C), then text and classes per distinct value only
    codes, uniques = pd.factorize(survey.catalog[column])  # missing values: -1
    text = pd.Series(uniques).astype(str)
    kept = (text.str.strip() != "").to_numpy()
    classes = sorted(set(text[kept]))
    if len(classes) < 2:
        raise SurveyError(f"column {column!r} needs at least two classes, found {classes}")
    lookup = {c: i for i, c in enumerate(classes)}
    per_value = np.array([lookup[t] if k else -1 for t, k in zip(text, kept, strict=True)] + [-1])
    return per_value[codes].astype(np.int64), classes  # code -1 reads the trailing -1


def train_classifier(
    survey_name: str,
    *,
    label_column: str | None = None,
    labels: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    encoder_version: str | None = None,
    epochs: int = 60,
    batch_size: int = 256,
    dropout: float = 0.3,
    label_fraction: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
    progress_bar: bool = True,
    activate: bool = True,
    parent: str | None = None,
    label_snapshot: dict[str, Any] | None = None,
    class_weights: str = "balanced",
    task: str = "class",
    mirror_pairs: Sequence[Sequence[str]] = (),
) -> ModelVersion:
    """MC-dropout MLP head on frozen encoder embeddings, temperature-calibrated.

    ``mirror_pairs``: class pairs the task's mirror image swaps (its schema's symmetries); the
    head then reads each embedding with its mirror image's and is mirror-equivariant
    (:mod:`models.mirror`).

    ``class_weights``: "balanced" weighs classes by inverse labelled frequency (macro recall on
    rare classes); "none" fits the labelled mix as it is (better accuracy when the labels follow
    an acquisition's skew, as in the labelling loop: see docs/results.md, S1).

    Labels come from a catalog column (``label_column``) or are given (``labels``: int per
    object, -1 for unlabelled, with ``classes``). The task's stored validation split
    (:mod:`backend.validation`, ~20% of the labelled objects, fixed once assigned) is held out
    for the metrics and never trained on; the temperature is fitted on a stratified 15% of the
    training part that the head does not see. ``label_fraction`` keeps only part of the rest.
    """
    from models import (
        ArrayDataset,
        EmbeddingClassifier,
        balanced_decision_weights,
        fit,
        predict_classes,
    )
    from models.mirror import mirror_permutation

    survey = Survey.open(survey_name)
    _seed(seed)
    registry = ModelRegistry()
    encoder = resolve_version(registry, survey.name, "encoder", encoder_version)
    embeddings = classifier_inputs(survey.name, encoder.version, mirrored=bool(mirror_pairs))
    embeddings = np.asarray(embeddings)
    if labels is None:
        if not label_column:
            raise SurveyError("give --label-column (a catalog column with class names)")
        labels, classes = catalog_labels(survey, label_column)
    labels = np.asarray(labels, dtype=np.int64)
    classes = list(classes or [])
    from backend.validation import validation_split

    split = validation_split(survey.name, task, survey.catalog["object_id"].to_numpy(), labels)
    held_rows, train_rows = split.val_rows, split.train_rows
    if len(held_rows) == 0 or len(train_rows) == 0:
        raise SurveyError(
            f"survey {survey.name}: too few labels to train and validate a classifier "
            f"({int((labels >= 0).sum())} labelled objects)"
        )
    cal_rows = np.array([], dtype=np.int64)
    if len(train_rows) >= 40:  # enough to keep a calibration part out of the head's training
        in_train = np.full(len(labels), -1, np.int64)
        in_train[train_rows] = labels[train_rows]
        fit_part, cal_rows = metrics.stratified_split(in_train, 0.15, seed=seed)
        train_rows = fit_part
    if label_fraction < 1.0:
        train_rows = metrics.subsample(train_rows, labels, label_fraction, seed=seed)
    if class_weights not in ("balanced", "none"):
        raise SurveyError(f"class_weights must be 'balanced' or 'none', not {class_weights!r}")
    counts = np.bincount(labels[train_rows], minlength=len(classes))
    weights = (
        (counts.sum() / np.maximum(counts, 1) / len(classes)).tolist()
        if class_weights == "balanced"
        else None
    )
    try:
        perm = mirror_permutation(classes, mirror_pairs) if mirror_pairs else None
    except ValueError as exc:
        raise SurveyError(f"survey {survey.name}, task {task}: {exc}") from exc
    model = EmbeddingClassifier(
        embeddings.shape[1] // (2 if perm else 1), classes, dropout=dropout,
        class_weights=weights, embedding_source={"kind": "encoder", "version": encoder.version},
        mirror_permutation=perm,
    )  # fmt: skip
    cfg = _train_config(
        epochs=epochs, batch_size=batch_size, seed=seed, progress_bar=progress_bar, lr=3e-3,
        block_size=1, warmup_fraction=0.0,
    )  # fmt: skip
    started = time.perf_counter()
    result = fit(model, ArrayDataset(embeddings, labels, rows=train_rows), cfg, progress=progress)
    import torch

    cal = cal_rows if len(cal_rows) else held_rows  # tiny label sets: calibrate on validation
    before = predict_classes(model, embeddings[held_rows], device="cpu")["probs"]
    # A balanced head predicts as if classes were equally common: class biases restore the
    # labelled mix (when the calibration part can bear K more parameters) and the decision
    # weights 1/prior keep its balanced recall (models.calibration).
    with_bias = class_weights == "balanced" and len(cal_rows) >= CALIBRATION_ROWS_PER_CLASS * len(
        classes
    )
    model.calibrate(
        torch.from_numpy(embeddings[cal]), torch.from_numpy(labels[cal]),
        n_samples=MC_SAMPLES, bias=with_bias,
    )  # fmt: skip
    if with_bias:
        fitted = np.concatenate([train_rows, cal_rows])
        model.decision_weights = balanced_decision_weights(labels[fitted], len(classes)).tolist()
    after = predict_classes(model, embeddings[held_rows], mc_samples=MC_SAMPLES, device="cpu")
    scores = metrics.classification(
        after["probs"], labels[held_rows], classes, decisions=model.decide(after["probs"])
    )
    scores["ece_uncalibrated"] = metrics.ece(before, labels[held_rows])
    scores["temperature"] = float(model.temperature)
    scores["train_seconds"] = time.perf_counter() - started
    snapshot = label_snapshot or {
        "source": f"catalog:{label_column}" if label_column else "given",
        "n_labelled": int((labels >= 0).sum()),
        "n_train": len(train_rows),
        "n_held_out": len(held_rows),
        "n_calibration": len(cal_rows),
        "class_counts": dict(zip(classes, counts.tolist(), strict=True)),
    }
    return _finish(
        registry, "classifier", model, survey,
        metrics_=scores,
        training={
            "train": cfg.to_dict(), "result": result.to_dict(), "labels": snapshot,
            "encoder": encoder.version, "label_fraction": label_fraction, "task": task,
            "validation": split.to_dict(),
        },
        parent=parent, activate=activate,
    )  # fmt: skip


def train_emulator(
    survey_name: str,
    *,
    targets: Sequence[str] = DEFAULT_TARGETS,
    encoder_version: str | None = None,
    from_encoder: bool = True,
    steps: int | None = None,
    epochs: int = 20,
    max_seconds: float | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: Progress | None = None,
    progress_bar: bool = True,
    activate: bool = True,
) -> ModelVersion:
    """Mixture-density emulator of catalog columns ``targets`` from the images.

    Starts from the survey's encoder backbone when one exists (``from_encoder``), which
    converges faster than from scratch. 15% of objects are held out for the metrics.
    """
    from backend.modelling import general
    from models import ArrayDataset, Emulator, TargetScaling, fit

    survey = Survey.open(survey_name)
    _seed(seed)
    targets = [t.strip() for t in targets if t.strip()]
    missing = [t for t in targets if t not in survey.catalog]
    if missing or not targets:
        raise SurveyError(
            f"survey {survey.name} has no numeric column(s) {missing or targets} to emulate "
            f"(columns: {', '.join(map(str, survey.catalog.columns))})"
        )
    y = survey.catalog[targets].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    transforms = [
        "log" if t in LOG_TARGETS and np.nanmin(y[:, j]) > 0 else "identity"
        for j, t in enumerate(targets)
    ]
    pixels = training_pixels(survey)
    registry = ModelRegistry()
    parent_encoder = None
    encoder = None
    if from_encoder and (registry.active(survey.name, "encoder") or encoder_version):
        parent_encoder = resolve_version(registry, survey.name, "encoder", encoder_version)
        encoder = load_model(parent_encoder)
        check_bands(encoder.bands, survey)
        from models.backbone import ResidualBackbone

        if not isinstance(getattr(encoder, "backbone", None), ResidualBackbone) or sorted(
            getattr(encoder, "input_channels", [])
        ) != sorted(survey.bands):
            # a colour-composite encoder has mixed the bands (physical properties such as
            # colours and photometric redshift are learnt from per-band input instead), and a
            # foreign encoder has no backbone of ours to start from
            encoder, parent_encoder = None, None
    if encoder is not None:
        model = Emulator.from_encoder(encoder, targets)
    else:
        adapter = general.survey_adapter(survey, mode="bands")
        model = Emulator(
            survey.bands,
            targets,
            normalization=adapted_normalization(pixels, adapter, seed),
            adapter=adapter,
        )
    dataset = ArrayDataset(pixels, y)
    train, held = _split(dataset, 0.15, seed)
    model.set_target_scaling(TargetScaling.fit(y[train.rows], targets, transforms))
    cfg = _train_config(
        max_steps=steps, epochs=epochs, max_seconds=max_seconds, batch_size=batch_size,
        seed=seed, progress_bar=progress_bar,
    )  # fmt: skip
    result = fit(model, train, cfg, val=held, progress=progress)
    scores = metrics.emulation(model, pixels, y, np.sort(held.rows), targets, device())
    return _finish(
        registry, "emulator", model, survey,
        metrics_={"loss": result.train_loss, "val_loss": result.val_loss, **scores},
        training={
            "train": cfg.to_dict(), "result": result.to_dict(), "targets": targets,
            "transforms": transforms, "labels": {"source": "catalog", "columns": targets},
            "budget": budget_record(result),
            "encoder": parent_encoder.version if parent_encoder else None,
        },
        parent=None, activate=activate,
    )  # fmt: skip
