"""Human labels: schemas (classes, keys, colours) and the append-only label store."""

from backend.labels.schema import LabelClass, LabelSchema, load_schema
from backend.labels.store import LabelError, LabelStore

__all__ = ["LabelClass", "LabelError", "LabelSchema", "LabelStore", "load_schema"]
