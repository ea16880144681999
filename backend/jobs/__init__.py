"""Background jobs: a ``jobs`` table in SQL (the truth) and a huey queue that carries job ids
to ``python -m backend worker``. Import :mod:`backend.jobs.api` for submit/list/cancel."""

from backend.jobs.table import JobError

__all__ = ["JobError"]
