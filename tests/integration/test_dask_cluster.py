"""A Dask scheduler and two workers started with the ``dask scheduler`` / ``dask worker``
commands on this machine: embedding through ``tcp://`` equals the synchronous result, and a
worker killed mid-embedding neither loses the job nor ever shows a partial product."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from backend.pipeline.execution import SchedulerError
from backend.survey import Survey

HOOK = Path(__file__).with_name("dask_slow_hook.py")
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def dask_cluster(home: Path) -> Iterator[str]:
    """``tcp://127.0.0.1:PORT`` of a scheduler with two single-threaded workers (each with a
    nanny that restarts its worker process), which see this test's data root and run every
    image partition slowly (``dask_slow_hook.py``)."""
    if not DASK.is_file():
        pytest.skip(f"no dask command beside {sys.executable}")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "LATENTSKY_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(HOOK.parents[2]), env.get("PYTHONPATH", "")])
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
                "--dashboard-address",
                ":0",
            ],
            **quiet,
        )
    ]
    worker = [
        DASK,
        "worker",
        address,
        "--nthreads",
        "1",
        "--no-dashboard",
        "--host",
        "127.0.0.1",
        "--dashboard-address",
        ":0",
    ]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([*worker, "--preload", str(HOOK)], **quiet))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_workers_started_with_the_dask_commands_embed_like_sync_and_survive_a_killed_worker(
    tiny_survey: Survey, dask_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    from backend.modelling import infer, train

    train.train_encoder("tiny", init="scratch", steps=2, batch_size=32, progress_bar=False)
    kw = {"progress_bar": False, "rows_per_partition": 16, "batch_size": 16}  # 10 partitions
    # Dask's nanny starts workers with OMP_NUM_THREADS=1: the reference runs one thread too
    # (a convolution split over 2 threads differs in the last bits, within float tolerance)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, path = infer.embed_survey("tiny", scheduler="sync", **kw)
    finally:
        torch.set_num_threads(threads)
    reference = np.load(path)
    Path(path).unlink()

    with Client(dask_cluster) as client:
        worker_pids = client.run(os.getpid)  # the worker processes (not their nannies)
    victim = sorted(worker_pids.values())[0]
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # the product is absent, or complete and right: never partial
        while not stop.is_set():
            if Path(path).exists():
                seen.append("ok" if np.array_equal(np.load(path), reference) else "partial")
            time.sleep(0.01)

    killed: list[int] = []

    def kill_after_the_first_block(info: dict) -> None:
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(info["done"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _, tcp_path = infer.embed_survey(
            "tiny", scheduler=dask_cluster, progress=kill_after_the_first_block, **kw
        )
    finally:
        stop.set()
        watcher.join()
    first = infer.image_partitions(len(tiny_survey), 16, 16)[0][1]
    assert killed == [first]  # killed after the first of ten partitions, with the rest to do
    assert _gone(victim)  # and reaped by its nanny, which started a new worker process
    assert tcp_path == path and "partial" not in seen
    assert np.array_equal(np.load(path), reference)  # bitwise the synchronous result
    assert not [p.name for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]

    # GPU tasks on workers that declare no GPU: one clear error, not a wait forever
    monkeypatch.setenv("LATENTSKY_DASK_GPU", "1")
    with pytest.raises(SchedulerError, match="no worker has them: start workers with"):
        infer.embed_survey("tiny", scheduler=dask_cluster, **kw)
    assert np.array_equal(np.load(path), reference)  # the product made before is untouched
