"""A failed, cancelled or lost job's model version is hidden and its products are removed
(issue 10, item 6): nothing of it is listed, and no predictions, embeddings or lineage of it stay
on disk, whether the job raised, was cancelled after its predictions, or lost its worker's lease
(what a ``kill -9`` of the worker comes to: ``tests/integration/test_job_lease.py`` kills it at
each stage and checks that the lease is reaped)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from backend.jobs import table
from backend.jobs.api import get_job, list_jobs
from backend.jobs.orphans import DISCARDED_PREFIX
from backend.pipeline.storage import PREDICTIONS_FILE, product_dir, write_predictions
from backend.registry import ModelRegistry, job_scope
from tests.integration.test_job_lease import (  # noqa: F401  (fixtures)
    _listed_classifiers,
    _retrain_cancelled_at,
    labelled,
    lease,
)


def traces_of(home: Path, kind: str, version: str) -> list[Path]:
    """Every file or folder under products/ that belongs to ``kind`` ``version``."""
    products = home / "products"
    found = [p for p in products.rglob("*") if f"{kind}-{version}" in p.as_posix()]
    return found + list(products.glob(f"*/{DISCARDED_PREFIX}*"))


def _hidden_classifier(home: Path) -> str:
    saved = sorted((home / "models" / "classifier").glob("v*"))
    assert len(saved) == 1, saved
    return saved[0].name


@pytest.mark.usefixtures("labelled")
def test_a_retrain_failing_after_its_predictions_leaves_none(home: Path, monkeypatch) -> None:
    """The disk fills up as the new head is about to be switched in: the job fails, and the
    predictions it had completed (recorded, ready to be shown) are gone with its version."""
    from backend.jobs.api import submit_job

    made: list[Path] = []

    def disk_full(self, survey, versions):
        made.extend((home / "products" / "tiny").glob(f"classifier-v*/{PREDICTIONS_FILE}"))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ModelRegistry, "set_active_many", disk_full)
    job = get_job(submit_job("retrain", "tiny", {}, "ana"))
    assert job["status"] == "failed" and "No space left" in job["error"], job
    assert len(made) == 1  # complete predictions existed when it failed
    version = _hidden_classifier(home)
    assert _listed_classifiers() == []
    assert traces_of(home, "classifier", version) == []
    assert not made[0].exists()


@pytest.mark.usefixtures("labelled")
def test_a_cancelled_retrain_leaves_no_predictions(home: Path, monkeypatch) -> None:
    from backend.modelling import infer

    job, answers = _retrain_cancelled_at(monkeypatch, infer, "predict_version", after=True)
    assert answers == ["running"] and job["status"] == "cancelled", job
    version = _hidden_classifier(home)
    assert _listed_classifiers() == []
    assert traces_of(home, "classifier", version) == []


def test_a_lost_worker_s_products_go_in_every_survey(home: Path, monkeypatch) -> None:
    """A job claimed by a worker that died: when its lease expires, the listing that finds it
    fails it and removes what its version made (here in two surveys), not others' products."""
    monkeypatch.setenv("LATENTSKY_JOB_LEASE_S", "0.5")
    registry = ModelRegistry()
    kept = registry.save("classifier", {}, {"classes": ["a", "b"]}, survey="tiny")
    job_id = table.insert_job("retrain", "tiny", {}, "ana")
    assert table.claim(job_id)
    with job_scope(job_id):
        orphan = registry.save("classifier", {}, {"classes": ["a", "b"]}, survey="tiny")
    rows = pd.DataFrame({"object_id": ["x"], "pred_class": ["a"]})
    for survey, version in [("tiny", orphan), ("other", orphan), ("tiny", kept)]:
        write_predictions(survey, "classifier", version.version, rows)
    (product_dir("tiny", "classifier", orphan.version) / ".staging-1-abc").mkdir()
    time.sleep(0.6)
    list_jobs()  # the app's poll and `jobs` reap expired leases
    assert get_job(job_id)["status"] == "failed"
    assert [v.version for v in registry.list("classifier")] == [kept.version]
    assert traces_of(home, "classifier", orphan.version) == []
    assert (product_dir("tiny", "classifier", kept.version) / PREDICTIONS_FILE).is_file()
