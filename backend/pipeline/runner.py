"""``ensure``: make every missing or outdated product, as one graph of named steps."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.pipeline.build import Progress, run_item
from backend.pipeline.kinds import DEFAULT_PRODUCTS, Target
from backend.pipeline.lineage import read_lineage
from backend.pipeline.planner import Item, Plan, plan
from backend.pipeline.storage import sweep_staging

Checkpoint = Callable[[str], None]
Report = Callable[[str], None]


@dataclass
class Outcome:
    """What :func:`ensure` found and did."""

    plan: Plan
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> lineage record
    seconds: float = 0.0

    @property
    def made(self) -> list[str]:
        """Keys of the products made or recorded."""
        return list(self.records)


def ensure(
    survey: str,
    products: Iterable[str] = DEFAULT_PRODUCTS,
    scheduler: Any = None,
    *,
    versions: Mapping[str, str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    report: Report | None = None,
) -> Outcome:
    """Make the ``products`` of ``survey`` (and what they read) that are missing or outdated
    against the versions in use (the active ones, or ``versions``), each step after the products
    it reads, through :func:`backend.pipeline.execution.executor` (``scheduler``: a
    :class:`~backend.pipeline.execution.SchedulerSpec`, its text, or None for the default).

    ``checkpoint(stage)`` is called before each step (a job's: it stops a cancelled job);
    ``progress`` gets the embedding's progress; ``report(line)`` a line per step started and
    finished. A failing step's error is raised and the steps that read its product never run;
    a product whose step did not finish is not there (nor its record), the others are kept."""
    started = time.perf_counter()
    sweep_staging(survey)
    the_plan = plan(survey, products, versions=versions, params=params)
    todo = the_plan.todo
    if not todo:
        return Outcome(the_plan, {}, time.perf_counter() - started)
    params = dict(params or {})
    steps: dict[str, tuple[Callable[[], Any], list[str]]] = {}
    for n, item in enumerate(todo, 1):
        fn = _step(
            item, f"  product {n}/{len(todo)}:", params, scheduler, checkpoint, progress, report
        )
        steps[item.key] = (fn, [d for d in item.deps if the_plan.items[d].todo])
    results = run_graph(steps, scheduler)
    return Outcome(the_plan, dict(results), time.perf_counter() - started)


def _step(
    item: Item,
    label: str,
    params: dict[str, Any],
    scheduler: Any,
    checkpoint: Checkpoint | None,
    progress: Progress | None,
    report: Report | None,
) -> Callable[[], dict[str, Any]]:
    context = contextvars.copy_context()  # the caller's (a job's checkpoint reads it)

    def body() -> dict[str, Any]:
        if checkpoint is not None:
            checkpoint("products")
        verb = "recording" if item.action == "adopt" else "making"
        if report:
            report(f"{label} {verb} {item.target} ({item.status}: {item.reason}) ...")
        t0 = time.perf_counter()
        rec = run_item(item, params, scheduler, progress)
        if report:
            report(f"{label} {item.target}: done in {time.perf_counter() - t0:.0f} s")
        return rec

    return lambda: context.run(body)


def run_graph(
    steps: Mapping[str, tuple[Callable[[], Any], list[str]]], scheduler: Any = None
) -> dict[str, Any]:
    """Run named steps with their dependencies through the scheduler's executor."""
    from backend.pipeline.execution import executor

    with executor(scheduler) as ex:
        return ex.submit_graph(steps)


def lineage(
    survey: str, product: str, version: str | None = None, *, kind: str | None = None
) -> dict[str, Any] | None:
    """The lineage record of ``product`` of ``survey``: of the version in use (active, else
    latest) of its model kind, or of ``version``; None when there is none. Products are
    named as in :data:`backend.pipeline.kinds.PRODUCTS`; predictions take ``kind``
    (classifier, emulator, autoencoder; "predictions:classifier" works too), an evaluation
    ``version`` = its task (default "class")."""
    from backend.pipeline.kinds import PRODUCTS, check_product, survey_target
    from backend.pipeline.planner import resolve_versions

    name, qualifier = check_product(product)
    kind = kind or qualifier
    if name == "evaluation":
        return read_lineage(Target(name, survey, "task", version or "class"))
    if PRODUCTS[name].subject == "survey":
        return read_lineage(survey_target(name, survey))
    if name == "predictions":
        if kind is None:
            raise ValueError("lineage of predictions needs the model kind")
        resolved = version or resolve_versions(survey).models.get(kind)
    else:
        kind = "encoder"
        resolved = version or resolve_versions(survey).encoder
    if resolved is None:
        return None
    return read_lineage(Target(name, survey, kind, resolved))
