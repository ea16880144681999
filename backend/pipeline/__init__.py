"""The pipeline: products of a survey, planned and executed (see docs/architecture.md).

- :mod:`backend.pipeline.kinds`: every product kind, declared once, and :class:`Target`;
- :mod:`backend.pipeline.storage`: where products live and how they are written atomically;
- :mod:`backend.pipeline.lineage`: the record written beside each product;
- :mod:`backend.pipeline.planner`: what is missing or outdated against the versions in use;
- :mod:`backend.pipeline.build`: make one product and record it;
- :mod:`backend.pipeline.runner`: ``ensure(survey, products, scheduler)`` runs the plan as a
  graph through :mod:`backend.pipeline.execution` (Dask), ``lineage(survey, product)``.

Importing this package loads nothing heavy; the names below are imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_PRODUCTS", "PRODUCTS", "ensure", "lineage", "plan"]

_WHERE = {
    "ensure": "backend.pipeline.runner",
    "lineage": "backend.pipeline.runner",
    "plan": "backend.pipeline.planner",
    "PRODUCTS": "backend.pipeline.kinds",
    "DEFAULT_PRODUCTS": "backend.pipeline.kinds",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'backend.pipeline' has no attribute {name!r}")
