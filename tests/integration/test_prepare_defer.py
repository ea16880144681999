"""``prepare --defer emulator`` (what ``make run`` does): the app's products are made at once
and the emulator's training is queued for the worker, once, with prepare's own budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.jobs.api import list_jobs
from backend.jobs.runner import run_job
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs

PREPARE = [
    "prepare", "--survey", "tiny", "--quick", "--encoder-init", "scratch",
    "--label-column", "size_class", "--targets", "size",
]  # fmt: skip


@pytest.fixture
def worker_queue(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs wait in the worker's queue, whatever queue an earlier test built in this process
    (tests/integration/test_jobs.py builds an immediate one: jobs run inline)."""
    from backend.jobs import queue

    monkeypatch.setenv("LATENTSKY_HUEY_IMMEDIATE", "0")
    monkeypatch.setattr(queue, "_huey", None)
    monkeypatch.setattr(queue, "_task", None)


@pytest.fixture
def tiny_with_targets(home: Path, worker_queue: None) -> Survey:
    n = 120
    catalog = pd.DataFrame(
        {
            "object_id": [f"tiny-{i:04d}" for i in range(n)],
            "ra": np.linspace(150.0, 150.5, n),
            "dec": np.linspace(2.0, 2.5, n),
            "size_class": np.where(np.arange(n) % 2, "big", "small"),
            "size": np.linspace(1.0, 3.0, n),
        }
    )
    with SurveyWriter("tiny", ["g", "r", "i"], (16, 16), "test", pixel_scale=0.2) as writer:
        writer.append(make_blobs(n), catalog)
    return Survey.open("tiny")


def test_deferred_emulator_is_queued_once_and_the_rest_is_ready(
    tiny_with_targets: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*PREPARE, "--defer", "emulator"]) == 0
    active = ModelRegistry().active_versions("tiny")
    assert {"encoder", "autoencoder", "classifier"} <= set(active)
    assert "emulator" not in active  # not trained here
    jobs = list_jobs("tiny")
    assert list(jobs["kind"]) == ["train-emulator"]
    assert jobs.iloc[0]["status"] == "queued"
    assert jobs.iloc[0]["params"] == {"targets": ["size"], "steps": 4}
    out = capsys.readouterr().out
    assert "queue the emulator's training for the worker" in out
    # a second prepare (the next `make run`) finds the job pending and queues nothing more
    assert main([*PREPARE, "--defer", "emulator"]) == 0
    assert len(list_jobs("tiny")) == 1
    assert "queue the emulator's training for the worker: present" in capsys.readouterr().out
    # the worker trains it on prepare's targets and activates it
    assert run_job(int(jobs.iloc[0]["id"])) == "succeeded"
    emulator = ModelRegistry().active("tiny", "emulator")
    assert emulator is not None and list(emulator.config["targets"]) == ["size"]


def test_only_known_kinds_can_be_deferred(
    tiny_with_targets: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*PREPARE, "--defer", "encoder"]) == 2
    assert "--defer encoder: only emulator can be deferred" in capsys.readouterr().err
    assert ModelRegistry().active_versions("tiny") == {}  # refused before anything was trained
