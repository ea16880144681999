"""Jobs: the table, the runner (huey immediate mode) and a real worker killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend.jobs import table
from backend.jobs.api import cancel_job, get_job, list_jobs, submit_job
from backend.jobs.runner import run_job
from backend.registry import ModelRegistry

# in this process submit_job runs the job inline (huey immediate mode, in-memory storage)
_previous = os.environ.get("LATENTSKY_HUEY_IMMEDIATE")
os.environ["LATENTSKY_HUEY_IMMEDIATE"] = "1"
from backend.jobs import queue as _queue  # noqa: E402

assert _queue.get_huey().immediate  # built now, while the variable is set
if _previous is None:
    del os.environ["LATENTSKY_HUEY_IMMEDIATE"]

REPO = Path(__file__).resolve().parents[2]


def _active_dummy(survey: str) -> dict[str, str]:
    registry = ModelRegistry()
    version = registry.save("classifier", {}, {"classes": ["a", "b"]}, survey=survey)
    registry.set_active(survey, "classifier", version.version)
    return registry.active_versions(survey)


def test_job_runs_and_records_progress_and_result(home: Path) -> None:
    job_id = submit_job("sleep", None, {"steps": 3, "seconds": 0.01}, "ana")
    job = get_job(job_id)
    assert job["status"] == "succeeded" and job["result"] == {"steps": 3}
    assert job["progress"]["step"] == 3 and job["progress"]["total"] == 3
    assert job["requested_by"] == "ana" and job["started"] and job["finished"]
    assert "step 3/3" in job["log_tail"]
    listed = list_jobs()
    assert listed["id"].tolist() == [job_id] and listed["status"].tolist() == ["succeeded"]
    assert run_job(job_id) == "succeeded"  # a duplicate delivery does not run it again


def test_failing_job_is_failed_and_active_model_unchanged(tiny_survey) -> None:
    before = _active_dummy("tiny")
    job_id = submit_job("train-classifier", "tiny", {"label_column": "size_class"})
    job = get_job(job_id)
    assert job["status"] == "failed" and "encoder" in job["error"]
    assert "Traceback" in job["log_tail"]
    assert ModelRegistry().active_versions("tiny") == before
    failing = submit_job("sleep", None, {"steps": 5, "seconds": 0.0, "fail_at": 2})
    assert get_job(failing)["status"] == "failed"
    with pytest.raises(ValueError, match="unknown job kind"):
        submit_job("dance", "tiny")


def test_cancel_queued_and_running(home: Path) -> None:
    queued = table.insert_job("sleep", None, {"steps": 2}, "ana")
    assert cancel_job(queued) == "cancelled"
    assert run_job(queued) == "cancelled"  # the worker does not start it
    running = table.insert_job("sleep", None, {"steps": 200, "seconds": 0.02}, "ana")
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(run_job(running)))
    thread.start()
    _wait(running, ("running",), timeout=30)
    assert cancel_job(running) == "running"
    thread.join(timeout=10)
    assert outcome == ["cancelled"] and get_job(running)["status"] == "cancelled"


def _worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "backend", "worker"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _submit(env: dict[str, str], params: dict) -> int:
    """Submit from another process (its huey is the home's SQLite queue, not immediate)."""
    code = f"from backend.jobs.api import submit_job; print(submit_job('sleep', None, {params!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def _wait(job_id: int, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(job_id)
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {get_job(job_id)['status']}, wanted {statuses}")


def test_killed_worker_job_failed_and_queue_resumes(tiny_survey, home: Path) -> None:
    before = _active_dummy("tiny")
    env = {**os.environ, "LATENTSKY_HOME": str(home), "LATENTSKY_HUEY_IMMEDIATE": "0",
           "LATENTSKY_JOB_LEASE_S": "3", "LATENTSKY_JOB_HEARTBEAT_S": "0.5"}  # fmt: skip
    worker = _worker(env)
    try:
        slow = _submit(env, {"steps": 600, "seconds": 0.1})
        _wait(slow, ("running",))
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        nxt = _submit(env, {"steps": 2, "seconds": 0.01})
        assert get_job(nxt)["status"] == "queued"
        worker = _worker(env)
        job = _wait(slow, ("failed",), timeout=30)  # once its lease (3 s) ran out
        assert "worker lost" in job["error"]
        assert _wait(nxt, ("succeeded",))["result"] == {"steps": 2}
        assert ModelRegistry().active_versions("tiny") == before
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_retrain_every_n_labels(tiny_survey, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from backend.active.loop import labels_since_active
    from backend.jobs.scheduling import maybe_schedule_retrain
    from backend.labels.store import LabelStore
    from backend.products import read_predictions, write_embeddings

    rng = np.random.default_rng(0)
    big = tiny_survey.catalog["size_class"].to_numpy() == "big"
    x = (rng.normal(0, 1, (150, 8)) + 3 * big[:, None]).astype(np.float32)

    def fill(out: np.ndarray) -> None:
        out[:] = x

    registry = ModelRegistry()
    encoder = registry.save("encoder", {}, {"kind": "dummy"}, survey="tiny")
    registry.set_active("tiny", "encoder", encoder.version)
    write_embeddings("tiny", "encoder", encoder.version, x.shape, fill)
    monkeypatch.setenv("LATENTSKY_RETRAIN_EVERY", "20")
    store = LabelStore()
    ids = tiny_survey.catalog["object_id"].to_numpy()
    for i in range(19):
        store.add("tiny", ids[i], "spiral" if big[i] else "elliptical", user="ana")
        assert maybe_schedule_retrain("tiny") is None
    store.add("tiny", ids[19], "spiral" if big[19] else "elliptical", user="ana")
    job_id = maybe_schedule_retrain("tiny")
    job = get_job(job_id)
    assert job["status"] == "succeeded", job["error"]
    version = registry.active("tiny", "classifier")
    assert version is not None and version.version == job["result"]["version"]
    snapshot = version.meta["training"]["labels"]
    assert snapshot["n_labelled"] == 20 and snapshot["cv"]["accuracy"] > 0.8
    assert set(snapshot["cv"]["recall"]) == {"elliptical", "spiral"}
    assert len(read_predictions("tiny", "classifier", version.version)) == 150
    assert labels_since_active("tiny") == 0 and maybe_schedule_retrain("tiny") is None
