"""Explanations of one object (classifier, similarity, anomaly), checked against the
simulator's recorded anomaly regions; the maths is in :mod:`models.explain`."""

from backend.explain.context import ExplainContext, cached_context, load_context
from backend.explain.explain import Explanation, explain_object

__all__ = ["ExplainContext", "Explanation", "cached_context", "explain_object", "load_context"]
