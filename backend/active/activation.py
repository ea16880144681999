"""Activating a model version by hand (a person's choice, whatever the gate said).

A classifier head reads one encoder's embeddings, so activating it activates that encoder with
it, in one write: users never see a head beside embeddings it was not trained on. An encoder is
shown through its map, index, anomaly and OOD scores (and map tiles, for a big survey); when
any is missing, the switch waits for an ``activate`` job that makes them first
(:func:`backend.pipeline.runner.ensure`) and then switches, so the app never points at an
encoder it cannot draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.pipeline.kinds import Target
from backend.products import has_embeddings
from backend.registry import ModelRegistry, ModelVersion, RegistryError

SHOWN_WITH_ENCODER = ("map", "index", "scores")  # what the app draws an encoder's survey with


def shown_with_encoder(survey: str) -> tuple[str, ...]:
    """What an encoder of ``survey`` is shown with: :data:`SHOWN_WITH_ENCODER`, its OOD scores
    (the domain-shift banner) and, for a big survey, its map tiles."""
    from backend.pipeline.kinds import derived_products

    return (*SHOWN_WITH_ENCODER, *derived_products(survey))


@dataclass
class ActivationPlan:
    """What a hand activation switches (``versions``: kind -> version, one write) and the
    encoder products that must be made first (empty: it can switch now)."""

    survey: str
    versions: dict[str, str]
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def immediate(self) -> bool:
        return not self.missing


def classifier_encoder(version: ModelVersion) -> str | None:
    """The encoder whose embeddings a classifier head reads (None for image classifiers)."""
    source = version.config.get("embedding_source") or {}
    return source.get("version") or (version.meta.get("training") or {}).get("encoder")


def plan_activation(
    survey: str, kind: str, version: str, registry: ModelRegistry | None = None
) -> ActivationPlan:
    """What activating ``kind`` ``version`` for ``survey`` takes; raises
    :class:`RegistryError` when it cannot be done at all (no embeddings to show)."""
    registry = registry or ModelRegistry()
    mv = registry.get(kind, version)
    active = registry.active_versions(survey)
    versions = {kind: version}
    notes: list[str] = []
    encoder = version if kind == "encoder" else None
    if kind == "classifier":
        reads = classifier_encoder(mv)
        if reads and reads != active.get("encoder"):
            versions["encoder"] = reads
            encoder = reads
            notes.append(f"it reads encoder {reads}'s embeddings, so encoder {reads} with it")
    missing: list[str] = []
    if encoder is not None:
        if not has_embeddings(survey, "encoder", encoder):
            raise RegistryError(
                f"encoder {encoder} has no embeddings of {survey} yet: run `python -m backend "
                f"products --survey {survey} --ensure` after making it active, or `python -m "
                f"backend embed --survey {survey} --model {encoder}` first"
            )
        missing = [
            p
            for p in shown_with_encoder(survey)
            if not Target(p, survey, "encoder", encoder).exists()
        ]
    return ActivationPlan(survey, versions, missing, notes)


def switch(plan: ActivationPlan, registry: ModelRegistry | None = None) -> str:
    """Switch every version of ``plan`` in one write; what to tell the user."""
    (registry or ModelRegistry()).set_active_many(plan.survey, plan.versions)
    return describe(plan, done=True)


def describe(plan: ActivationPlan, done: bool) -> str:
    """One sentence on what was (``done``) or will be switched."""
    names = " and ".join(f"{k} {v}" for k, v in plan.versions.items())
    verb = "is" if len(plan.versions) == 1 else "are"
    text = (
        f"{names} {verb} now active for {plan.survey}"
        if done
        else f"{names} will be active for {plan.survey} once its {', '.join(plan.missing)} are made"
    )
    if plan.notes:
        text += f" ({'; '.join(plan.notes)})"
    return text + "."


def activate_job(survey: str, params: dict[str, Any], checkpoint: Any, progress: Any) -> dict:
    """The ``activate`` job: make the encoder's missing products, then switch (last step)."""
    from backend.pipeline.runner import ensure

    plan = plan_activation(survey, params["kind"], params["version"])
    made: list[str] = []
    if plan.missing:
        encoder = plan.versions.get("encoder")
        outcome = ensure(
            survey, plan.missing, params.get("scheduler"), versions={"encoder": encoder},
            checkpoint=checkpoint, progress=progress,
        )  # fmt: skip
        made = sorted(outcome.records)
        checkpoint("activating")
    text = switch(plan)
    return {"activated": plan.versions, "made": made, "message": text}
