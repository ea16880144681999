"""Active learning: acquisition scores, diverse batches, cold start and the labelling queue."""

from backend.active.acquisition import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    acquisition_scores,
    cold_start,
    next_batch,
)

__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "acquisition_scores", "cold_start", "next_batch"]
