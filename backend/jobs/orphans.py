"""The model versions of a finished job, shown or hidden, and the products of hidden ones removed.

:func:`settle_versions` is the one call every path that finishes a job makes (the worker's
outcome in :mod:`backend.jobs.runner`, a lost lease in :func:`backend.jobs.table.reap_expired`):
:meth:`backend.registry.ModelRegistry.settle_job` shows a succeeded job's versions and hides
those of a failed or cancelled one (unless one became active); then every product made for a
hidden version (``products/<survey>/<kind>-<version>/``: predictions, embeddings, map, index,
scores and their lineage records, in any survey) is removed. The version's folder stays, marked
``failed``/``cancelled`` (its number is never reused); nothing of it is listed or read again.

A product folder is first renamed to ``.discarded-<kind>-<version>-<id>`` (one atomic step: no
reader sees half of it) and then deleted; a process that dies in between leaves only such a
folder, removed by the next call.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from backend.config import get_settings

log = logging.getLogger(__name__)
DISCARDED_PREFIX = ".discarded-"


def settle_versions(job_id: int, status: str) -> dict[str, str]:
    """Show or hide the versions job ``job_id`` saved (``status``: how it finished) and remove
    the products of those hidden; returns {kind: version} of the versions it touched."""
    from backend.registry import ModelRegistry

    registry = ModelRegistry()
    touched = registry.settle_job(job_id, status)
    for kind, version in touched.items():
        if version not in {v.version for v in registry.list(kind)}:  # hidden
            removed = discard_products(kind, version)
            if removed:
                log.info("job %s %s: removed the products of %s %s", job_id, status, kind, version)
    return touched


def discard_products(kind: str, version: str, products_dir: Path | None = None) -> list[Path]:
    """Remove ``<kind>-<version>`` product folders of every survey; returns those removed."""
    root = products_dir or get_settings().products_dir
    if not root.is_dir():
        return []
    removed = []
    for survey_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for leftover in survey_dir.glob(f"{DISCARDED_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        folder = survey_dir / f"{kind}-{version}"
        if not folder.is_dir():
            continue
        doomed = survey_dir / f"{DISCARDED_PREFIX}{kind}-{version}-{uuid.uuid4().hex[:8]}"
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            continue  # another process discarded it first
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(folder)
    return removed
