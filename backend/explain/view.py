"""What the web app shows of an explanation: the figure as PNG bytes and a few figures, so
that ``app/`` never touches torch (it calls :func:`explain_for_app` on a worker thread)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.explain.context import cached_context
from backend.explain.explain import explain_object
from backend.explain.figure import explanation_png


@dataclass(frozen=True)
class ExplanationView:
    """The PNG figure of one object's explanation and what its caption says."""

    object_id: str
    png: bytes
    predicted: str | None
    runner_up: str | None
    neighbour_id: str | None
    anomaly_type: str
    region_fraction: float | None  # area share of the recorded region (None: no mask)
    residual_inside: float | None  # share of the residual energy above noise inside it
    attribution_inside: float | None  # share of the anomaly attribution inside it
    seconds: float


def explain_for_app(survey: str, object_id: str) -> ExplanationView:
    """Explain ``object_id`` with the survey's active models (loaded once per process)."""
    from models.explain import energy_inside, excess_residual

    expl = explain_object(cached_context(survey), object_id)
    region = res = att = None
    if expl.mask is not None:
        region = float(expl.mask.mean())
        if expl.residual is not None:
            res = energy_inside(excess_residual(expl.residual), expl.mask)
            att = energy_inside(expl.anomaly_map, expl.mask)
    return ExplanationView(
        object_id=expl.object_id,
        png=explanation_png(expl),
        predicted=expl.predicted,
        runner_up=expl.runner_up,
        neighbour_id=expl.neighbour_id,
        anomaly_type=expl.anomaly_type,
        region_fraction=region,
        residual_inside=res,
        attribution_inside=att,
        seconds=expl.seconds,
    )
