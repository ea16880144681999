"""``python -m backend prepare``: make a survey ready to explore.

Simulates the demo survey when missing, then trains whatever model is missing (encoder,
autoencoder, classifier on ``true_class``, emulator of the simulator's ground truth) and makes
every product through :func:`backend.pipeline.runner.ensure` (embeddings, predictions, map, index,
anomaly scores): only those missing or outdated against the active versions, so a second run
takes seconds and a new encoder version regenerates everything downstream of it. Training budgets are optimiser steps, so the models do not depend on the machine's
load; the encoder continues the shipped general encoder's self-supervised training on the survey
(``assets/encoders/``), and starts from random weights only when no general encoder is shipped.
A survey without label classes of its own gets the classifier's column's classes as its schema
(:mod:`backend.labels.adopt`), so labels given in the app can teach that classifier.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.registry import ModelRegistry
from backend.survey import Survey, list_surveys

# Training budgets (optimiser steps) for the full and the --quick run.
# Measured on the 10k demo (2 cores, 2026-11-30): encoder ~0.5 s/step, autoencoder ~0.44,
# emulator ~0.2; with simulation (39 s), UMAP (31 s) and predictions a fresh demo takes ~8 min.
BUDGETS = {
    "encoder": (300, 4),  # continued from the general encoder (from scratch: ENCODER_SCRATCH)
    "autoencoder": (250, 4),
    "emulator": (600, 4),
}
ENCODER_SCRATCH = (800, 4)


@dataclass
class Step:
    name: str
    done: Callable[[], bool]
    run: Callable[[], object]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from backend.cli import add_scheduler_option

    p = sub.add_parser("prepare", help="simulate the demo survey and train its models if missing")
    p.add_argument("--survey", default="demo", help="survey to prepare (default: demo)")
    p.add_argument("--n", type=int, default=10_000, help="objects to simulate (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes and budgets, for tests")
    p.add_argument(
        "--encoder-init",
        choices=("general", "scratch"),
        default="general",
        help="start the encoder from the shipped general encoder (default) or random weights",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        help="optional wall-clock cap per training step (reported when it cuts training)",
    )
    p.add_argument("--label-column", default="true_class", help="catalog column for the classifier")
    p.add_argument(
        "--targets",
        default="redshift,sersic_n,half_light_radius,ellipticity",
        help="catalog columns the emulator learns (skipped when absent)",
    )
    p.add_argument(
        "--defer",
        default="",
        metavar="KINDS",
        help="models to train in the background worker instead of here (comma list; only "
        "'emulator'): `make run` serves the app without waiting for them",
    )
    add_scheduler_option(p)
    p.set_defaults(func=run)


def _model_steps(args: argparse.Namespace) -> list[Step]:
    """The training/inference steps for an existing survey (conditional on its columns)."""
    from backend.modelling import train
    from backend.pipeline.kinds import DEFAULT_PRODUCTS, default_products
    from backend.pipeline.planner import plan
    from backend.pipeline.runner import ensure

    quick = 1 if args.quick else 0
    registry = ModelRegistry()
    name = args.survey
    scheduler = getattr(args, "scheduler", None)

    def has(kind: str) -> Callable[[], bool]:
        return lambda: registry.active(name, kind) is not None

    def products(*names: str) -> Step:
        return Step(
            "products: " + ", ".join(names),
            lambda: not plan(name, names).todo,
            lambda: ensure(name, names, scheduler, report=print),
        )

    def columns_present(columns: list[str]) -> bool:
        catalog = Survey.open(name).catalog
        return all(c in catalog for c in columns)

    from backend.modelling.general import general_available

    targets = [t for t in args.targets.split(",") if t]
    cap = getattr(args, "max_seconds", None)
    init = getattr(args, "encoder_init", "general")
    if init == "general" and not general_available():
        init = "scratch"
    encoder_steps = (BUDGETS["encoder"] if init == "general" else ENCODER_SCRATCH)[quick]
    steps = [
        Step(
            f"train the contrastive encoder ({encoder_steps} steps from {init})",
            has("encoder"),
            lambda: report_budget(
                train.train_encoder(name, init=init, steps=encoder_steps, max_seconds=cap)
            ),
        ),
        products("embeddings"),
        Step(
            "train the autoencoder",
            has("autoencoder"),
            lambda: report_budget(
                train.train_autoencoder(name, steps=BUDGETS["autoencoder"][quick], max_seconds=cap)
            ),
        ),
    ]
    if columns_present([args.label_column]):
        steps.append(
            Step(
                f"train the classifier on {args.label_column!r}",
                has("classifier"),
                lambda: train.train_classifier(
                    name, label_column=args.label_column, epochs=5 if quick else 60
                ),
            )
        )
        steps.append(label_classes_step(name, args.label_column))
    if targets and columns_present(targets):
        emulator = {"targets": targets, "steps": BUDGETS["emulator"][quick], "max_seconds": cap}
        if "emulator" in deferred(args):
            steps.append(
                Step(
                    "queue the emulator's training for the worker",
                    lambda: has("emulator")() or training_pending(name, "emulator"),
                    lambda: print(f"  job {queue_training(name, 'emulator', emulator)} queued"),
                )
            )
        else:
            steps.append(
                Step(
                    "train the emulator",
                    has("emulator"),
                    lambda: report_budget(train.train_emulator(name, **emulator)),
                )
            )
    # then the OOD scores (the app's domain-shift banner) and, for a big survey, the map tiles
    steps.append(products(*DEFAULT_PRODUCTS))
    steps.append(products(*default_products(name)[len(DEFAULT_PRODUCTS) :]))
    return steps


def label_classes_step(survey: str, column: str) -> Step:
    """The survey labels with ``column``'s classes (what its classifier learns): written as its
    own schema when it has none (:func:`backend.labels.adopt.adopt_column_classes`)."""
    from backend.labels.adopt import adopt_column_classes, covers
    from backend.modelling.train import catalog_labels

    def classes() -> list[str]:
        return catalog_labels(Survey.open(survey), column)[1]  # as the classifier orders them

    return Step(
        f"label classes from {column!r}",
        lambda: covers(survey, classes()),  # its own schema, or the default, has them all
        lambda: print(f"  {adopt_column_classes(survey, classes(), column).message}"),
    )


DEFERRABLE = ("emulator",)


def deferred(args: argparse.Namespace) -> set[str]:
    """The model kinds ``--defer`` leaves to the background worker."""
    from backend.errors import UserError

    kinds = {k.strip() for k in (getattr(args, "defer", "") or "").split(",") if k.strip()}
    unknown = kinds - set(DEFERRABLE)
    if unknown:
        raise UserError(
            f"--defer {','.join(sorted(unknown))}: only {', '.join(DEFERRABLE)} can be deferred"
        )
    return kinds


def training_pending(survey: str, kind: str) -> bool:
    """Whether a ``train-<kind>`` job of ``survey`` is queued or running."""
    from backend.jobs.api import list_jobs

    jobs = list_jobs(survey, limit=200)
    pending = jobs[(jobs["kind"] == f"train-{kind}") & jobs["status"].isin(["queued", "running"])]
    return not pending.empty


def queue_training(survey: str, kind: str, options: dict[str, object]) -> int:
    """Queue ``train-<kind>`` for the worker with ``options`` (None values left out)."""
    from backend.jobs.api import submit_job

    params = {k: v for k, v in options.items() if v is not None}
    return submit_job(f"train-{kind}", survey, params, user="prepare")


def report_budget(version: object) -> object:
    """Say so when the wall-clock cap stopped a training run before its step budget."""
    budget = version.meta.get("training", {}).get("budget", {})  # type: ignore[attr-defined]
    if budget.get("warning"):
        print(f"warning: {version.kind} {version.version}: {budget['warning']}")  # type: ignore[attr-defined]
    return version


def _ensure_survey(args: argparse.Namespace) -> None:
    if any(m.name == args.survey for m in list_surveys()):
        print(f"survey {args.survey!r}: present")
        return
    if args.survey != "demo":
        from backend.errors import UserError

        raise UserError(
            f"survey {args.survey!r} does not exist; only the demo survey is simulated here "
            "(ingest yours with `python -m backend ingest ...`)"
        )
    from backend.simulate.cli import simulate_survey

    n = min(args.n, 400) if args.quick else args.n
    print(f"survey {args.survey!r}: simulating {n:,} galaxies with GalSim ...", flush=True)
    t0 = time.perf_counter()
    simulate_survey(args.survey, n=n, seed=args.seed)
    print(f"survey {args.survey!r}: done in {time.perf_counter() - t0:.0f} s")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    _ensure_survey(args)
    steps = _model_steps(args)
    for i, step in enumerate(steps, 1):
        if step.done():
            print(f"[{i}/{len(steps)}] {step.name}: present")
            continue
        print(f"[{i}/{len(steps)}] {step.name} ...", flush=True)
        t0 = time.perf_counter()
        step.run()
        print(f"[{i}/{len(steps)}] {step.name}: done in {time.perf_counter() - t0:.0f} s")
    print(f"prepare: {args.survey!r} ready in {time.perf_counter() - started:.0f} s")
    return 0
