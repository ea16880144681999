"""Make one planned product and write its lineage record.

Each builder writes its files atomically (single files renamed into place, several-file
products published from a staging folder) and the record last, so a build that fails leaves
either the product as it was or no product, never a partial one.
"""

from __future__ import annotations

import fcntl
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from backend.pipeline.kinds import Target
from backend.pipeline.lineage import Timer, read_lineage, write_lineage
from backend.pipeline.planner import (
    Item,
    hash_on_disk,
    inputs_of,
    normal_params,
    resolve_versions,
    survey_stamp,
)
from backend.pipeline.storage import ProductError

Progress = Callable[[dict[str, Any]], Any]


def current_inputs(target: Target, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``target`` is made from, as things are on disk now (made with ``params``)."""
    return inputs_of(
        target, survey_stamp(target.survey), hash_on_disk, resolve_versions(target.survey), params
    )


def record(
    target: Target, params: dict[str, Any] | None, seconds: float | None, *, adopted: bool = False
) -> dict[str, Any]:
    """Write ``target``'s lineage record from the state on disk (after its files)."""
    inputs = current_inputs(target, params)
    return write_lineage(target, inputs, params, seconds, adopted=adopted)


def with_scheduler(fn: Callable[..., Any], scheduler: Any, **kwargs: Any) -> Any:
    """``fn(**kwargs)``, passing ``scheduler`` on when ``fn`` takes one."""
    if "scheduler" in inspect.signature(fn).parameters:
        kwargs["scheduler"] = scheduler
    return fn(**kwargs)


@contextmanager
def build_lock(target: Target) -> Iterator[None]:
    """One build of ``target`` at a time across processes (a file lock beside it)."""
    target.directory.mkdir(parents=True, exist_ok=True)
    with open(target.directory / f".{target.product}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_current(target: Target, wanted: dict[str, Any] | None = None) -> bool:
    """True when ``target`` exists with a record whose inputs are those of now (and whose
    parameters are ``wanted``, when given): another process may have made it while this one
    waited for the lock."""
    rec = read_lineage(target)
    if rec is None or not target.exists():
        return False
    made_with = normal_params(target.product, wanted) if wanted is not None else rec.get("params")
    if rec.get("inputs") != current_inputs(target, made_with):
        return False
    return wanted is None or rec.get("params") == normal_params(target.product, wanted)


def run_item(
    item: Item,
    params: dict[str, Any],
    scheduler: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Make (or record) ``item``'s product; returns its lineage record."""
    target = item.target
    if item.action == "adopt":
        return record(target, None, None, adopted=True)
    if item.action == "retrain-head":
        return retrain_head(item, scheduler)
    with build_lock(target):
        if is_current(target, params.get(target.product)):
            return read_lineage(target) or {}
        return BUILDERS[target.product](target, params.get(target.product), scheduler, progress)


# -- builders: (target, params, scheduler, progress) -> lineage record --------------------------
# (embeddings take {"batch_size": N} as params: how the work is cut, not what is made, so it is
# not recorded and does not make a product outdated)
def _embeddings(mirror: bool) -> Callable[..., dict[str, Any]]:
    def build(target: Target, params: Any, scheduler: Any, progress: Progress | None) -> dict:
        from backend.modelling.infer import embed_survey

        timer = Timer()
        batch = (
            {"batch_size": int(params["batch_size"])} if params and "batch_size" in params else {}
        )
        with_scheduler(
            embed_survey, scheduler, survey_name=target.survey, version=target.version,
            progress=progress, progress_bar=progress is None, mirror=mirror, **batch,
        )  # fmt: skip
        if not mirror:  # the encoder's OOD reference is a sample of its training embeddings
            from backend.latent.ood_product import reference_after_embedding

            reference_after_embedding(target.survey, target.version)
        return record(target, None, timer.seconds)

    return build


def _predictions(target: Target, params: Any, scheduler: Any, progress: Any) -> dict:
    from backend.modelling.infer import predict_version

    timer = Timer()
    with_scheduler(
        predict_version, scheduler, survey=target.survey, kind=target.kind, version=target.version
    )
    return record(target, None, timer.seconds)


def _latent(step: str) -> Callable[..., dict[str, Any]]:
    def build(target: Target, params: Any, scheduler: Any, progress: Any) -> dict:
        from backend.latent import pipeline

        given = normal_params(target.product, params) or {}
        if step == "map":
            from backend.latent.projection import MapParams

            pipeline.make_map(
                target.survey, target.version, MapParams(**given), scheduler=scheduler
            )
        elif step == "index":
            pipeline.make_index(target.survey, target.version, given["kind"], scheduler=scheduler)
        else:
            pipeline.make_scores(
                target.survey, target.version, tuple(given["scorers"]), scheduler=scheduler,
                combine_with=given["combine"],
            )  # fmt: skip
        return read_lineage(target) or {}

    return build


def _pixel_scores(target: Target, params: Any, scheduler: Any, progress: Any) -> dict:
    from backend.latent.image_scores import make_pixel_scores

    make_pixel_scores(target.survey, scheduler)
    return read_lineage(target) or {}


def _tiles(target: Target, params: Any, scheduler: Any, progress: Any) -> dict:
    from backend.latent.tiles_product import make_tiles

    make_tiles(target.survey, target.version)
    return read_lineage(target) or {}


def _ood(target: Target, params: Any, scheduler: Any, progress: Any) -> dict:
    from backend.latent.ood_product import make_ood

    make_ood(target.survey, target.version)
    return read_lineage(target) or {}


def _evaluation(target: Target, params: Any, scheduler: Any, progress: Any) -> dict:
    from backend.evaluation.plots import figures
    from backend.evaluation.report import write_report
    from backend.evaluation.runner import evaluate

    given = dict(params or (read_lineage(target) or {}).get("params") or {})
    if not given.get("label_column"):
        raise ProductError(
            f"the evaluation of task {target.version} of survey {target.survey} needs a label "
            f"column: run `python -m backend evaluate --survey {target.survey} --label-column "
            "COLUMN` once"
        )
    timer = Timer()
    report = evaluate(
        target.survey, given["label_column"], task=target.version,
        merge_specs=tuple(given.get("merge", ())), rare=tuple(given.get("rare", ())),
        encoders=given.get("encoders"),
        baselines=tuple(given.get("baselines", ("pixel-pca", "random-init"))),
        seed=int(given.get("seed", 0)), progress=False,
    )  # fmt: skip
    write_report(report, target.directory, figures(report))
    return record(target, given, timer.seconds)


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "embeddings": _embeddings(mirror=False),
    "mirror_embeddings": _embeddings(mirror=True),
    "predictions": _predictions,
    "map": _latent("map"),
    "index": _latent("index"),
    "pixel_scores": _pixel_scores,
    "scores": _latent("scores"),
    "tiles": _tiles,
    "ood": _ood,
    "evaluation": _evaluation,
}


def retrain_head(item: Item, scheduler: Any = None) -> dict[str, Any]:
    """The classifier reads another encoder than the one in use: train a head with the same
    labels (its catalog columns and the label store's consensus) on the encoder in use, predict
    every object with it and, when that encoder is the active one, put the head to the
    activation gate (:func:`backend.active.gate.activate_if_not_worse`, as every retrain): it
    becomes the active classifier only when not worse than the active one on the validation
    split; a refused head is kept with its decision (``gate.json``), the active classifier goes
    on reading its own encoder's embeddings, and the planner does not retrain it again for that
    encoder. When the encoder is not the active one, the caller switches both together.
    Returns the new head's predictions' record."""
    from backend.active.loop import catalog_sources, merged_labels, mirror_pairs_for
    from backend.labels.schema import load_schema
    from backend.labels.store import LabelStore
    from backend.modelling.infer import predict_version
    from backend.modelling.train import train_classifier
    from backend.registry import ModelRegistry

    old = item.target
    survey = old.survey
    registry = ModelRegistry()
    previous = registry.get("classifier", old.version)
    prefix = "embeddings/encoder-"
    encoder = next(k[len(prefix) :] for k in item.deps if k.startswith(prefix))
    training = previous.meta.get("training", {})
    snapshot = training.get("labels") or {}
    task = str(snapshot.get("task") or training.get("task") or "class")
    epochs = int((training.get("train") or {}).get("epochs") or 60)  # as the head it replaces
    timer = Timer()
    labels, classes, snap = merged_labels(survey, LabelStore(), task, catalog_sources(previous))
    version = train_classifier(
        survey, labels=labels, classes=classes, encoder_version=encoder, epochs=epochs,
        progress_bar=False, activate=False, parent=previous.version, label_snapshot=snap, task=task,
        mirror_pairs=mirror_pairs_for(load_schema(survey), classes),
    )  # fmt: skip
    with_scheduler(
        predict_version, scheduler, survey=survey, kind="classifier", version=version.version
    )
    target = Target("predictions", survey, "classifier", version.version)
    rec = record(target, {"retrained_from": previous.version}, timer.seconds)
    active = registry.active(survey, "encoder")
    if active is not None and active.version == encoder:
        if Target("predictions", survey, "classifier", previous.version).exists():
            from backend.active.gate import activate_if_not_worse

            activate_if_not_worse(survey, version.version, labels, classes, task=task)
        else:  # the head it replaces made no predictions: nothing to judge it against
            registry.set_active(survey, "classifier", version.version)
    return rec
