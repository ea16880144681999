"""The labelling loop: retrain the classifier every N new labels, with metrics per round.

:func:`backend.jobs.scheduling.maybe_schedule_retrain` is what the app calls after storing a
label: it submits a ``retrain`` job when :func:`labels_since_active` reaches
:func:`backend.config.retrain_every`. This module never imports ``backend.jobs`` (the jobs call the pipeline):
the job handlers pass their stage ``checkpoint`` (cancel / lost-lease check) in.
:func:`retrain_classifier` (the job) trains the MC-dropout head on the cached embeddings with the
store's consensus labels, predicts the survey with the new version and only then activates it.
With few labels (< ``CV_BELOW``) the held-out metrics are cross-validated (accuracy, ECE,
per-class recall over out-of-fold predictions) and stored in the version's label snapshot.
Training runs on one torch thread and the prediction on :func:`job_threads` (all cores but one).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from backend import config
from backend.labels.schema import load_schema
from backend.labels.store import LabelStore, label_events
from backend.modelling.common import Progress
from backend.registry import ModelRegistry

CV_BELOW = 500  # labels: below this, metrics come from k-fold cross-validation
CV_FOLDS = 5

Checkpoint = Callable[[str], None]


def no_checkpoint(stage: str) -> None:
    """The stage checkpoint outside a job: nothing to check."""


def job_threads() -> int:
    """Torch threads for the retrain's prediction of every object: ``LATENTSKY_JOB_THREADS``,
    else all cores but one, since the web server shares the machine (Procfile). On 2 cores
    next to a busy process, 2 OpenMP threads predicted 1M objects 6x slower than 1 (bench P6);
    on an idle machine they were at most 1.3x faster."""
    import torch

    threads = config.job_threads()
    if threads is not None:
        return threads
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (restored after). The retrain's training steps
    are a few hundred rows each: they gain nothing from more threads and, on a busy 2-core
    machine, OpenMP threads waiting on each other made them up to 20x slower (bench P6)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _last_event_id(store: LabelStore, survey: str, task: str) -> int:
    query = sa.select(sa.func.max(label_events.c.id)).where(
        label_events.c.survey == survey, label_events.c.task == task
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def labels_since_active(survey: str, store: LabelStore | None = None, task: str = "class") -> int:
    """Current labels (one per object and user, undone ones not counted) given after the active
    classifier's snapshot (all, when none): the labels a retrain would learn from anew, counted
    as the labelled counts are (:meth:`LabelStore.count`)."""
    store = store or LabelStore()
    active = ModelRegistry().active(survey, "classifier")
    snapshot = (active.meta.get("training", {}).get("labels") or {}) if active else {}
    return store.count(survey, task=task, after=int(snapshot.get("last_event_id", 0)))


def store_labels(
    survey: str, store: LabelStore, task: str = "class"
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Consensus labels as ints per object (-1 unlabelled), the classes and a snapshot."""
    from backend.survey import Survey

    s = Survey.open(survey)
    last_id = _last_event_id(store, survey, task)
    consensus = store.consensus(survey, task=task)
    classes = [c for c in load_schema(survey).names if c in set(consensus["value"])]
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.full(len(s), -1, np.int64)
    if len(consensus):
        ids = pd.Index(s.catalog["object_id"].astype(str))
        where = ids.get_indexer(consensus["object_id"].astype(str))
        value = consensus["value"].map(lookup)
        known = (where >= 0) & value.notna().to_numpy()
        labels[where[known]] = value[known].astype(np.int64).to_numpy()
    counts = np.bincount(labels[labels >= 0], minlength=len(classes))
    snapshot = {
        "source": "label_store", "task": task, "last_event_id": last_id,
        "n_labelled": int((labels >= 0).sum()),
        "class_counts": dict(zip(classes, counts.tolist(), strict=True)),
    }  # fmt: skip
    return labels, classes, snapshot


def cross_validated_metrics(
    embeddings: np.ndarray, labels: np.ndarray, classes: list[str], seed: int = 0,
    folds: int = CV_FOLDS, steps: int = 300,
) -> dict[str, Any]:  # fmt: skip
    """Out-of-fold accuracy, ECE and per-class recall of the MC-dropout head (full-batch)."""
    import torch

    from backend.modelling import metrics
    from models import EmbeddingClassifier, predict_classes

    rows = np.flatnonzero(labels >= 0)
    fold = np.random.default_rng(seed).permutation(len(rows)) % folds
    probs = np.zeros((len(rows), len(classes)), np.float32)
    x_all = np.asarray(embeddings[np.sort(rows)], dtype=np.float32)
    y_all = torch.from_numpy(labels[rows])
    for k in range(folds):
        train, test = fold != k, fold == k
        if not test.any() or len(np.unique(labels[rows][train])) < 2:
            continue
        torch.manual_seed(seed + k)
        model = EmbeddingClassifier(x_all.shape[1], classes, dropout=0.3)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        batch = {"inputs": torch.from_numpy(x_all[train]), "targets": y_all[train]}
        model.train()
        for _ in range(steps):
            opt.zero_grad()
            model.training_loss(batch).backward()
            opt.step()
        out = predict_classes(model.eval(), x_all[test], mc_samples=20, device="cpu")
        probs[test] = out["probs"]
    scores = metrics.classification(probs, labels[rows], classes)
    scores.pop("reliability", None)
    return {**scores, "method": f"{folds}-fold cross-validation", "n_labelled": len(rows)}


def catalog_sources(version: Any) -> list[str]:
    """Catalog columns a classifier version learnt from (its label snapshot)."""
    if version is None:
        return []
    snapshot = version.meta.get("training", {}).get("labels") or {}
    columns = list(snapshot.get("catalog_columns") or [])
    source = str(snapshot.get("source", ""))
    if source.startswith("catalog:"):
        columns.append(source.split(":", 1)[1])
    return list(dict.fromkeys(columns))


def merged_labels(
    survey: str, store: LabelStore, task: str, catalog_columns: list[str]
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Every label source of a task as ints per object: catalog columns first, the label
    store's consensus over them (a person's label wins), classes in schema order then the rest.
    """
    from backend.modelling.train import catalog_labels
    from backend.survey import Survey

    s = Survey.open(survey)
    store_y, store_classes, snapshot = store_labels(survey, store, task)
    # codes into ``names`` per object (-1: unlabelled), later sources overwriting earlier ones:
    # array operations only, no Python work per object
    names: list[str] = []
    codes = np.full(len(s), -1, np.int64)
    for y, source_classes in [
        *(catalog_labels(s, c) for c in catalog_columns if c in s.catalog),
        (store_y, store_classes),
    ]:
        names += [c for c in source_classes if c not in names]
        to_code = np.array([names.index(c) for c in source_classes], np.int64)
        codes[y >= 0] = to_code[y[y >= 0]]
    present = {names[i] for i in np.unique(codes[codes >= 0])}
    schema = [c for c in load_schema(survey).names if c in present]
    classes = schema + sorted(present - set(schema))
    remap = np.array([classes.index(n) if n in present else -1 for n in names] + [-1], np.int64)
    labels = remap[codes]  # -1 indexes the trailing -1
    counts = np.bincount(labels[labels >= 0], minlength=len(classes))
    snapshot.update(
        source="+".join(["label_store", *(f"catalog:{c}" for c in catalog_columns)]),
        catalog_columns=list(catalog_columns),
        n_labelled=int((labels >= 0).sum()),
        n_store_labels=int((store_y >= 0).sum()),
        class_counts=dict(zip(classes, counts.tolist(), strict=True)),
    )
    return labels, classes, snapshot


def mirror_pairs_for(schema: Any, classes: list[str]) -> list[tuple[str, str]]:
    """The schema's mirror-swapped class pairs whose two classes both have labels (a pair
    with one side unlabelled cannot be learnt equivariantly, and is left out)."""
    return [(a, b) for a, b in schema.mirror_pairs if a in classes and b in classes]


def retrain_classifier(
    survey: str,
    params: dict[str, Any],
    progress: Progress | None = None,
    checkpoint: Checkpoint = no_checkpoint,
) -> dict[str, Any]:
    """Train on every label source → predict with the new version → activate only if the
    activation gate finds it not worse than the active one on the validation split.
    ``checkpoint(stage)`` is called between stages (the job's: it stops a cancelled job)."""
    from backend.active.gate import activate_if_not_worse
    from backend.modelling.common import resolve_version, short_metrics
    from backend.modelling.train import train_classifier
    from backend.pipeline.runner import ensure
    from backend.products import open_embeddings
    from backend.survey import SurveyError

    store = LabelStore()
    registry = ModelRegistry()
    task = params.get("task", "class")
    parent = registry.active_versions(survey).get("classifier")
    parent_version = registry.get("classifier", parent) if parent else None
    columns = catalog_sources(parent_version)
    if params.get("label_column"):
        columns = list(dict.fromkeys([*columns, params["label_column"]]))
    labels, classes, snapshot = merged_labels(survey, store, task, columns)
    if len(classes) < 2 or snapshot["n_labelled"] < 4:
        raise SurveyError(
            f"survey {survey} needs labels of at least two classes to retrain "
            f"(have {snapshot['class_counts']})"
        )
    with torch_threads(1):  # small full-batch problems (see torch_threads)
        if snapshot["n_labelled"] < CV_BELOW:
            encoder = resolve_version(registry, survey, "encoder", params.get("encoder"))
            embeddings = open_embeddings(survey, "encoder", encoder.version)
            snapshot["cv"] = cross_validated_metrics(embeddings, labels, classes)
        version = train_classifier(
            survey, labels=labels, classes=classes, encoder_version=params.get("encoder"),
            epochs=int(params.get("epochs", 60)), progress=progress, progress_bar=False,
            activate=False, parent=parent, label_snapshot=snapshot,
            class_weights="none" if not columns else "balanced", task=task,
            mirror_pairs=mirror_pairs_for(load_schema(survey), classes),
        )  # fmt: skip
    checkpoint("predicting")  # a cancelled job stops here; if not, activation checks last
    with torch_threads(job_threads()):
        ensure(
            survey, ["predictions:classifier"], params.get("scheduler"),
            versions={"classifier": version.version}, checkpoint=checkpoint,
        )  # fmt: skip
    checkpoint("gating")
    decision = activate_if_not_worse(
        survey, version.version, labels, classes, task=task, force=bool(params.get("force"))
    )
    round_metrics = snapshot.get("cv") or short_metrics(version.metrics)
    return {
        "version": version.version, "parent": parent, "n_labelled": snapshot["n_labelled"],
        "activated": decision.activate, "reason": decision.reason,
        "metrics": {k: round_metrics.get(k) for k in ("accuracy", "ece", "recall")},
    }  # fmt: skip


def finetune_and_maybe_activate(
    survey: str,
    params: dict[str, Any],
    progress: Progress | None = None,
    checkpoint: Checkpoint = no_checkpoint,
) -> dict[str, Any]:
    """Fine-tune the encoder on every label source → embed → classifier head → predictions →
    gate; when it passes, build the map, index and anomaly scores of the new encoder and switch
    encoder and classifier together (one atomic write). ``checkpoint(stage)`` is called between
    stages (the job's: it stops a cancelled job)."""
    from backend.active.gate import activate_if_not_worse
    from backend.active.soft_targets import vote_targets
    from backend.modelling.finetune import finetune_encoder
    from backend.modelling.train import train_classifier
    from backend.pipeline.kinds import with_derived
    from backend.pipeline.runner import ensure
    from backend.survey import Survey, SurveyError
    from backend.validation import validation_split

    store = LabelStore()
    registry = ModelRegistry()
    task = params.get("task", "class")
    parent = registry.active_versions(survey).get("classifier")
    columns = catalog_sources(registry.get("classifier", parent) if parent else None)
    if params.get("label_column"):
        columns = list(dict.fromkeys([*columns, params["label_column"]]))
    labels, classes, snapshot = merged_labels(survey, store, task, columns)
    if len(classes) < 2:
        raise SurveyError(f"survey {survey} needs labels of at least two classes to fine-tune")
    ids = Survey.open(survey).catalog["object_id"].to_numpy()
    split = validation_split(survey, task, ids, labels)
    schema = load_schema(survey)
    pairs = mirror_pairs_for(schema, classes)
    flip = bool(params.get("flip", schema.mirror_symmetric))
    encoder = finetune_encoder(
        survey, labels, classes, split.train_rows, encoder_version=params.get("encoder"),
        steps=params.get("steps"), flip=flip, task=task, progress=progress,
        progress_bar=False, mirror_pairs=pairs,
        soft_targets=vote_targets(store, survey, task, classes, ids)[0],
        recipe=params.get("recipe"),
    )  # fmt: skip
    checkpoint("embedding")
    scheduler, candidate = params.get("scheduler"), {"encoder": encoder.version}
    with torch_threads(job_threads()):
        ensure(survey, ["embeddings"], scheduler, versions=candidate, checkpoint=checkpoint)
    checkpoint("training classifier")
    with torch_threads(1):
        classifier = train_classifier(
            survey, labels=labels, classes=classes, encoder_version=encoder.version,
            epochs=int(params.get("epochs", 60)), progress_bar=False, activate=False,
            parent=parent, label_snapshot=snapshot, task=task, mirror_pairs=pairs,
        )  # fmt: skip
    checkpoint("predicting")
    candidate["classifier"] = classifier.version
    with torch_threads(job_threads()):
        ensure(
            survey, ["predictions:classifier"], scheduler, versions=candidate,
            checkpoint=checkpoint,
        )  # fmt: skip
    checkpoint("gating")

    def products() -> None:  # the new encoder's latent products, before the switch
        ensure(survey, with_derived(survey, ["embeddings", "map", "index", "scores"]), scheduler,
               versions=candidate, checkpoint=checkpoint)  # fmt: skip

    decision = activate_if_not_worse(
        survey, classifier.version, labels, classes, task=task,
        force=bool(params.get("force")), together={"encoder": encoder.version},
        before_switch=products,
    )  # fmt: skip
    return {
        "version": classifier.version, "encoder": encoder.version, "parent": parent,
        "n_labelled": snapshot["n_labelled"], "flip": flip, "mirror_pairs": pairs,
        "activated": decision.activate, "reason": decision.reason,
    }  # fmt: skip
