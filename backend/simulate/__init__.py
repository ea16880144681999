"""The GalSim demo survey simulator: ``python -m backend simulate --survey demo``.

Multi-band (g, r, i, z) stamps of galaxies of seven morphological classes with redshifted SED
colours, ground-based PSFs and noise, rare injected anomalies, and a ground-truth catalog.
Heavy imports (GalSim) happen only when a function below is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.simulate.config import ANOMALY_KINDS, CLASS_FRACTIONS, CLASSES, SurveyConfig

if TYPE_CHECKING:
    from backend.simulate.survey import iter_simulated, render_object, simulate_survey

__all__ = [
    "ANOMALY_KINDS",
    "CLASSES",
    "CLASS_FRACTIONS",
    "SurveyConfig",
    "iter_simulated",
    "render_object",
    "simulate_survey",
]


def __getattr__(name: str) -> Any:
    if name in {"iter_simulated", "render_object", "simulate_survey"}:
        from backend.simulate import survey

        return getattr(survey, name)
    raise AttributeError(f"module 'backend.simulate' has no attribute {name!r}")
