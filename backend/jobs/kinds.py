"""What each job kind does. A handler gets (survey, params, progress) and returns a result dict.

Training handlers register with ``activate=False`` and make the new version active only as their
very last step, after its products exist; a failure or cancellation before that leaves the
survey's active models untouched (handlers call :func:`backend.jobs.context.checkpoint` between
stages; the activation itself checks last).
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
        from backend.modelling.infer import predict_version
        from backend.registry import ModelRegistry

        options = {k: params[k] for k in TRAIN_OPTIONS if k in params}
        if kind == "classifier":
            options["label_column"] = params.get("label_column", "true_class")
        fn = getattr(train, f"train_{kind}")
        version = fn(survey, progress=progress, progress_bar=False, activate=False, **options)
        if kind in ("classifier", "emulator", "autoencoder"):
            checkpoint("predicting")
            predict_version(survey, kind, version.version)
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
        if params.get("activate", True):
            ModelRegistry().set_active(survey, kind, version.version)
        return {**result, "activated": bool(params.get("activate", True))}

    return run


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


def embed(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from backend.modelling.infer import embed_survey

    version, path = embed_survey(
        survey, params.get("version"), progress=progress, progress_bar=False
    )
    return {"version": version.version, "path": path}


def predict(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from backend.modelling.infer import predict_survey

    kinds = tuple(params.get("kinds", ("classifier", "emulator", "autoencoder")))
    return {"written": predict_survey(survey, kinds, progress_bar=False)}


def _latent(step: str) -> Handler:
    def run(survey: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        from backend.latent import pipeline

        out = getattr(pipeline, f"make_{step}")(survey, params.get("version"))
        return {"version": out.version, "path": str(out.path), "seconds": out.seconds}

    return run


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
    "embed": embed,
    "predict": predict,
    "map": _latent("map"),
    "index": _latent("index"),
    "score": _latent("scores"),
    "sleep": sleep,
}
JOB_KINDS = tuple(HANDLERS)
