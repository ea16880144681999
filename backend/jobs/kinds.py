"""What each job kind does. A handler gets (survey, params, progress) and returns a result dict.

Training handlers register with ``activate=False`` and make the new version active only as their
very last step, after its products exist; a failure or cancellation before that leaves the
survey's active models untouched (handlers call :func:`backend.jobs.context.checkpoint` between
stages; the activation itself checks last). Every product is made through
:func:`backend.pipeline.runner.ensure` (the jobs call the pipeline; the pipeline never imports jobs);
``params["scheduler"]`` says where (default: ``LATENTSKY_SCHEDULER``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from backend.modelling.common import Progress

Handler = Callable[[str, dict[str, Any], Progress], dict[str, Any]]

TRAIN_KINDS = ("encoder", "autoencoder", "classifier", "emulator")
TRAIN_OPTIONS = ("steps", "epochs", "max_seconds", "batch_size", "seed")


def _train(kind: str) -> Handler:
    def run(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        from backend.jobs.context import checkpoint
        from backend.modelling import train
        from backend.modelling.common import short_metrics
        from backend.pipeline.runner import ensure
        from backend.registry import ModelRegistry

        options = {k: params[k] for k in TRAIN_OPTIONS if k in params}
        if kind == "classifier":
            options["label_column"] = params.get("label_column", "true_class")
        if kind == "emulator" and params.get("targets"):
            options["targets"] = list(params["targets"])
        fn = getattr(train, f"train_{kind}")
        version = fn(survey, progress=progress, progress_bar=False, activate=False, **options)
        scheduler = params.get("scheduler")
        switch = {kind: version.version}
        if kind in ("classifier", "emulator", "autoencoder"):
            checkpoint("predicting")
            ensure(
                survey, [f"predictions:{kind}"], scheduler, versions={kind: version.version},
                checkpoint=checkpoint,
            )  # fmt: skip
        elif params.get("activate", True):  # the new encoder's products, before it is shown
            from backend.pipeline.kinds import encoder_products

            checkpoint("products")
            outcome = ensure(
                survey, encoder_products(survey), scheduler, versions={"encoder": version.version},
                checkpoint=checkpoint, progress=progress,
            )  # fmt: skip
            switch.update(retrained_heads(outcome))
        checkpoint("gating" if kind == "classifier" else "ready to activate")
        result = {
            "kind": kind,
            "version": version.version,
            "metrics": short_metrics(version.metrics),
        }
        if kind == "classifier":  # judged against the active one on the validation split
            decision = gate_catalog_classifier(
                survey, version.version, options["label_column"], force=bool(params.get("force"))
            )
            return {**result, "activated": decision.activate, "reason": decision.reason}
        if not params.get("activate", True):
            return {**result, "activated": False, "switched": {}}
        if "classifier" in switch:  # shown only with a head the gate finds not worse
            from backend.active.gate import gate_retrained_head

            decision = gate_retrained_head(
                survey, switch["classifier"], together={kind: version.version},
                force=bool(params.get("force")),
            )  # fmt: skip
            return {
                **result, "activated": decision.activate, "reason": decision.reason,
                "switched": switch if decision.activate else {},
            }  # fmt: skip
        ModelRegistry().set_active_many(survey, switch)
        return {**result, "activated": True, "switched": switch}

    return run


def retrained_heads(outcome: Any) -> dict[str, str]:
    """{"classifier": version} of the head ``ensure`` retrained on a new encoder, if any."""
    for item in outcome.plan.items.values():
        if item.action == "retrain-head" and item.key in outcome.records:
            return {"classifier": str(outcome.records[item.key]["version"])}
    return {}


def gate_catalog_classifier(survey: str, version: str, label_column: str, force: bool) -> Any:
    """The activation gate for a classifier trained on a catalog column."""
    from backend.active.gate import activate_if_not_worse
    from backend.modelling.train import catalog_labels
    from backend.survey import Survey

    labels, classes = catalog_labels(Survey.open(survey), label_column)
    return activate_if_not_worse(survey, version, labels, classes, force=force)


def retrain(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Classifier on cached embeddings with the label store's labels → predict → activate."""
    from backend.active.loop import retrain_classifier
    from backend.jobs.context import checkpoint

    return retrain_classifier(survey, params, progress, checkpoint=checkpoint)


def finetune(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Labels fine-tune the encoder; products and activation follow the gate's decision."""
    from backend.active.loop import finetune_and_maybe_activate
    from backend.jobs.context import checkpoint

    return finetune_and_maybe_activate(survey, params, progress, checkpoint=checkpoint)


def activate(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """A person's activation: the encoder's missing products first, then one switch."""
    from backend.active.activation import activate_job
    from backend.jobs.context import checkpoint

    return activate_job(survey, params, checkpoint, progress)


def _products(*names: str) -> Handler:
    """A job that makes ``names`` (missing or outdated ones) of the versions in use, or of
    ``params["version"]`` (an encoder version for the latent products)."""

    def run(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        from backend.jobs.context import checkpoint
        from backend.pipeline.kinds import with_derived
        from backend.pipeline.runner import ensure

        versions = {"encoder": params["version"]} if params.get("version") else None
        wanted = tuple(params.get("kinds", ())) if names == ("predictions",) else ()
        products = with_derived(survey, [f"predictions:{k}" for k in wanted] or list(names))
        outcome = ensure(
            survey, products, params.get("scheduler"), versions=versions,
            checkpoint=checkpoint, progress=progress,
        )  # fmt: skip
        return _summary(outcome)

    return run


def _summary(outcome: Any) -> dict[str, Any]:
    """What a product job reports: each product asked for, its version and what was done."""
    made = {
        key: {"version": rec.get("version"), "hash": str(rec.get("content_hash", ""))[:12]}
        for key, rec in outcome.records.items()
    }
    present = [key for key in outcome.plan.requested if key not in made]
    result: dict[str, Any] = {"made": made, "present": present, "seconds": outcome.seconds}
    if outcome.plan.versions.encoder:
        result["version"] = outcome.plan.versions.encoder
    if outcome.plan.notes:
        result["notes"] = outcome.plan.notes
    return result


def sleep(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Diagnostic job: ``steps`` steps of ``seconds`` each (tests, checking a worker is alive);
    ``fail_at`` raises at that step."""
    steps, seconds = int(params.get("steps", 10)), float(params.get("seconds", 0.1))
    for step in range(1, steps + 1):
        time.sleep(seconds)
        if params.get("fail_at") == step:
            raise RuntimeError(f"sleep job asked to fail at step {step}")
        if progress({"step": step, "total_steps": steps, "loss": 1.0 / step}) is False:
            break
    return {"steps": steps}


HANDLERS: dict[str, Handler] = {
    **{f"train-{k}": _train(k) for k in TRAIN_KINDS},
    "retrain": retrain,
    "finetune": finetune,
    "activate": activate,
    "embed": _products("embeddings"),
    "predict": _products("predictions"),
    "map": _products("map"),
    "index": _products("index"),
    "score": _products("scores"),
    "sleep": sleep,
}
JOB_KINDS = tuple(HANDLERS)
