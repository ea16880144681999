"""The pipeline: products of a survey, planned and executed (see docs/architecture.md)."""
