"""Product files of a (survey, model version): the names older callers import.

Everything here is defined once in :mod:`backend.pipeline.storage` (paths, atomic writes,
readers); see :mod:`backend.pipeline` for the product kinds, lineage and ``ensure``.
"""

from __future__ import annotations

from backend.pipeline.storage import (
    ProductError,
    has_embeddings,
    open_embeddings,
    product_dir,
    read_predictions,
    write_embeddings,
    write_predictions,
)

__all__ = [
    "ProductError",
    "has_embeddings",
    "open_embeddings",
    "product_dir",
    "read_predictions",
    "write_embeddings",
    "write_predictions",
]
