"""A job state machine that cannot lie (issue 10, items 4-6).

- A worker holds a lease on its running job and renews it; a job whose lease expired is failed
  ("worker lost") whatever the restart timing, even when the dead worker's PID still looks alive
  (an unreaped zombie here), and ``jobs --cancel`` clears it.
- Cancel is honoured at every stage up to and including activation, which is the last, atomic
  step; a cancel that comes after that point is not acknowledged as a cancel.
- The model version of a killed, failed or cancelled job is marked failed and hidden from the
  registry's lists (``models``, the app).

The worker is killed with SIGKILL at each stage of a retrain: training, after its predictions,
just before activation, and inside activation (before the active pointer is written). The lease
and cancel tests run on SQLite and PostgreSQL; the kill at each stage on SQLite.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from backend.jobs import table
from backend.jobs.api import cancel_job, get_job, list_jobs, submit_job
from backend.registry import ModelRegistry

# in this process submit_job runs the job inline (huey immediate mode, in-memory storage)
_previous = os.environ.get("LATENTSKY_HUEY_IMMEDIATE")
os.environ["LATENTSKY_HUEY_IMMEDIATE"] = "1"
from backend.jobs import queue as _queue  # noqa: E402

assert _queue.get_huey().immediate  # built now, while the variable is set
if _previous is None:
    del os.environ["LATENTSKY_HUEY_IMMEDIATE"]

REPO = Path(__file__).resolve().parents[2]
LEASE = {"LATENTSKY_JOB_LEASE_S": "3", "LATENTSKY_JOB_HEARTBEAT_S": "0.5"}
FAIL_WITHIN_S = 30  # the bound, from the kill to the job's failed status

# Run inside a worker process: make the retrain stop (forever) at one stage, after writing the
# stage's name to a file, so the test can kill the worker exactly there.
STALLING_WORKER = """
import sys, time
from pathlib import Path

stage, flag = sys.argv[1], Path(sys.argv[2])


def stall():
    flag.write_text(stage)
    while True:
        time.sleep(60)


if stage == "training":  # inside the training loop (first progress report)
    from backend.modelling import train

    original_train = train.train_classifier

    def train_classifier(*args, **kwargs):
        kwargs["progress"] = lambda info: stall()
        return original_train(*args, **kwargs)

    train.train_classifier = train_classifier
elif stage == "prediction":  # predictions written: a complete, not yet activated version
    from backend.modelling import infer

    original_predict = infer.predict_version

    def predict_version(*args, **kwargs):
        original_predict(*args, **kwargs)
        stall()

    infer.predict_version = predict_version
elif stage == "activation":  # the gate passed, the switch is next
    from backend.registry import ModelRegistry

    def set_active_many(self, survey, versions):
        stall()

    ModelRegistry.set_active_many = set_active_many
elif stage == "pointer":  # inside the switch: the active pointer file is being written
    from backend import registry

    original_write = registry.atomic_write_json

    def atomic_write_json(path, data):
        if Path(path).parent.name == "active":
            stall()
        return original_write(path, data)

    registry.atomic_write_json = atomic_write_json

from backend.cli import main

sys.exit(main(["worker"]))
"""


@pytest.fixture
def lease(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in LEASE.items():
        monkeypatch.setenv(key, value)
    return LEASE


@pytest.fixture
def labelled(tiny_survey, lease) -> None:
    """The tiny survey with (dummy) encoder embeddings and 20 labels: enough for a retrain."""
    from backend.labels.store import LabelStore
    from backend.products import write_embeddings

    rng = np.random.default_rng(0)
    big = tiny_survey.catalog["size_class"].to_numpy() == "big"
    x = (rng.normal(0, 1, (150, 8)) + 3 * big[:, None]).astype(np.float32)
    registry = ModelRegistry()
    encoder = registry.save("encoder", {}, {"kind": "dummy"}, survey="tiny")
    registry.set_active("tiny", "encoder", encoder.version)
    write_embeddings(
        "tiny", "encoder", encoder.version, x.shape, lambda out: out.__setitem__(..., x)
    )
    store = LabelStore()
    ids = tiny_survey.catalog["object_id"].to_numpy()
    for i in range(20):
        store.add("tiny", ids[i], "spiral" if big[i] else "elliptical", user="ana")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, **LEASE, "LATENTSKY_HOME": str(home), "LATENTSKY_HUEY_IMMEDIATE": "0"}


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *(args or ("-m", "backend", "worker"))], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop(*workers: subprocess.Popen) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)


def _until(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"after {timeout:.0f} s: {what}")


def _finished(job_id: int) -> dict | None:
    job = get_job(job_id)  # reads only: whoever marks the job must be the worker (or lister)
    return job if job["status"] in table.FINISHED else None


def _all_finished() -> dict[int, str] | None:
    """{id: status} once every job is finished, as listing them shows (None before)."""
    jobs = list_jobs()
    if not jobs["status"].isin(table.FINISHED).all():
        return None
    return {int(i): str(s) for i, s in zip(jobs["id"], jobs["status"], strict=True)}


def _cli(*argv: str) -> str:
    """What ``python -m backend ARGV`` prints (run in this process)."""
    from backend.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(list(argv)) == 0
    return out.getvalue()


def _listed_classifiers() -> list[str]:
    """Classifier versions as ``python -m backend models --json`` lists them."""
    return [v["version"] for v in json.loads(_cli("models", "--json", "--kind", "classifier"))]


def _running_job() -> int:
    jobs = list_jobs()
    return int(jobs[jobs["status"] == "running"]["id"].iloc[0])


# -- item 5: leases, not PIDs ----------------------------------------------------------------
@pytest.mark.both_databases
def test_job_of_a_killed_worker_fails_or_is_cancelled_though_its_pid_looks_alive(
    home: Path, lease
) -> None:
    env = _env(home)
    doomed = table.insert_job("sleep", None, {"steps": 3000, "seconds": 0.1}, "ana")
    cancelled = table.insert_job("sleep", None, {"steps": 3000, "seconds": 0.1}, "ana")
    worker = _worker(env, "-m", "backend", "worker", "--workers", "2")  # sends queued jobs
    try:
        _until(lambda: get_job(doomed)["status"] == get_job(cancelled)["status"] == "running",
               120, "the worker did not start both jobs")  # fmt: skip
        os.kill(worker.pid, signal.SIGKILL)  # not reaped: a zombie, its PID still answers
        killed_at = time.monotonic()
        assert cancel_job(cancelled) in ("running", "cancelled")
        # no worker runs now: listing the jobs (the app polls it, `jobs` prints it) tells the truth
        status = _until(_all_finished, FAIL_WITHIN_S, "jobs of the killed worker still running")
        assert time.monotonic() - killed_at < FAIL_WITHIN_S
        assert status == {doomed: "failed", cancelled: "cancelled"}
        assert "worker lost" in get_job(doomed)["error"]
    finally:
        _stop(worker)


@pytest.mark.both_databases
def test_cancel_clears_a_job_whose_lease_expired(home: Path, lease) -> None:
    job_id = table.insert_job("sleep", None, {"steps": 2}, "ana")
    assert table.claim(job_id)  # claimed by a worker that never renews its lease: it died
    said = _until(lambda: "cancelled" in (out := _cli("jobs", "--cancel", str(job_id))) and out,
                  FAIL_WITHIN_S, "`jobs --cancel` never cleared the job of a dead worker")  # fmt: skip
    assert said.strip() == f"job {job_id}: cancelled"
    job = get_job(job_id)
    assert job["status"] == "cancelled" and "worker lost" in job["error"]
    assert " cancelled " in _cli("jobs").splitlines()[1]


@pytest.mark.both_databases
def test_automatic_retrains_resume_after_a_worker_is_lost(labelled, monkeypatch) -> None:
    from backend.jobs.scheduling import maybe_schedule_retrain

    monkeypatch.setenv("LATENTSKY_RETRAIN_EVERY", "20")
    stuck = table.insert_job("retrain", "tiny", {}, "loop")
    assert table.claim(stuck)  # its worker died right after: no lease renewal
    assert maybe_schedule_retrain("tiny") is None  # one retrain of this survey is running
    new = _until(lambda: maybe_schedule_retrain("tiny"), FAIL_WITHIN_S,
                 "automatic retrains stay blocked by a dead worker's job")  # fmt: skip
    assert get_job(stuck)["status"] == "failed" and "worker lost" in get_job(stuck)["error"]
    assert get_job(new)["status"] == "succeeded", get_job(new)["error"]


# -- items 5 and 6: kill -9 at each stage ------------------------------------------------------
@pytest.mark.parametrize("stage", ["training", "prediction", "activation", "pointer"])
def test_worker_killed_at_each_stage(labelled, home: Path, tmp_path: Path, stage: str) -> None:
    registry = ModelRegistry()
    before, listed_before = registry.active_versions("tiny"), _listed_classifiers()
    script, flag = tmp_path / "stalling_worker.py", tmp_path / "stalled"
    script.write_text(STALLING_WORKER)
    env = {**_env(home), "PYTHONPATH": str(REPO)}
    job_id = table.insert_job("retrain", "tiny", {}, "ana")
    worker = _worker(env, str(script), stage, str(flag))  # sends the queued job on start
    restarted = None
    try:
        _until(flag.exists, 180, f"the worker never reached the {stage} stage")
        assert get_job(job_id)["status"] == "running"
        os.kill(worker.pid, signal.SIGKILL)  # not reaped yet: its PID still looks alive
        killed_at = time.monotonic()
        restarted = _worker(env)  # restarted at once
        job = _until(lambda: _finished(job_id), FAIL_WITHIN_S, "job still running")
        assert time.monotonic() - killed_at < FAIL_WITHIN_S
        assert job["status"] == "failed" and "worker lost" in job["error"], job
        assert registry.active_versions("tiny") == before  # nothing activated
        assert _listed_classifiers() == listed_before  # no orphan listed
        assert [v.version for v in registry.list("classifier", "tiny")] == listed_before
        saved = sorted((home / "models" / "classifier").glob("v*"))
        if stage != "training":  # a complete version was saved: kept, but marked failed
            assert len(saved) == 1  # (its job is failed first, then its versions)
            marker = saved[0] / "job.json"
            _until(lambda: json.loads(marker.read_text())["state"] == "failed", 10,
                   f"{saved[0].name} not marked failed: {marker.read_text()}")  # fmt: skip
            assert json.loads(marker.read_text())["job"] == job_id
    finally:
        _stop(worker, *([restarted] if restarted else []))


# -- item 4: cancel honoured up to and including activation ------------------------------------
def _retrain_cancelled_at(monkeypatch, target: object, name: str, after: bool) -> tuple:
    """Run a retrain inline with ``target.name`` wrapped to cancel the job (before or after
    calling through); returns (job, what cancel answered)."""
    original = getattr(target, name)
    answers: list[str] = []

    def wrapped(*args, **kwargs):
        if not after:
            answers.append(cancel_job(_running_job()))
        out = original(*args, **kwargs)
        if after:
            answers.append(cancel_job(_running_job()))
        return out

    monkeypatch.setattr(target, name, wrapped)
    job_id = submit_job("retrain", "tiny", {}, "ana")
    return get_job(job_id), answers


@pytest.mark.both_databases
def test_cancel_during_prediction_is_honoured(labelled, monkeypatch) -> None:
    from backend.modelling import infer

    before = ModelRegistry().active_versions("tiny")
    job, answers = _retrain_cancelled_at(monkeypatch, infer, "predict_version", after=True)
    assert answers == ["running"]
    assert job["status"] == "cancelled", job
    assert ModelRegistry().active_versions("tiny") == before
    assert _listed_classifiers() == []  # the cancelled job's version is hidden


@pytest.mark.both_databases
def test_cancel_just_before_activation_is_honoured(labelled, monkeypatch) -> None:
    before = ModelRegistry().active_versions("tiny")
    job, answers = _retrain_cancelled_at(monkeypatch, ModelRegistry, "set_active_many", False)
    assert answers == ["running"]
    assert job["status"] == "cancelled", job
    assert ModelRegistry().active_versions("tiny") == before
    assert _listed_classifiers() == []


@pytest.mark.both_databases
def test_cancel_after_the_switch_began_is_refused_not_ignored(labelled, monkeypatch) -> None:
    """Once activation has begun it completes; the cancel says so instead of being accepted."""
    from backend import registry as registry_module

    original = registry_module.atomic_write_json
    answers: list[str] = []

    def write(path, data):
        if Path(path).parent.name == "active" and "classifier" in data:
            answers.append(cancel_job(_running_job()))
        return original(path, data)

    monkeypatch.setattr(registry_module, "atomic_write_json", write)
    job = get_job(submit_job("retrain", "tiny", {}, "ana"))
    assert answers == ["activating"]
    assert job["status"] == "succeeded" and not job["cancel_requested"], job
    active = ModelRegistry().active_versions("tiny")["classifier"]
    assert active == job["result"]["version"] and _listed_classifiers() == [active]
