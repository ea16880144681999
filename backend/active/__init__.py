"""Active learning: acquisition scores, diverse batches, cold start and the labelling queue."""

from backend.active.acquisition import STRATEGIES, acquisition_scores, cold_start, next_batch

__all__ = ["STRATEGIES", "acquisition_scores", "cold_start", "next_batch"]
