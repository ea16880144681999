"""100 concurrent labellers on PostgreSQL posting labels through the HTTP API (target: p95 per
label <= 300 ms).

    .venv/bin/python bench/bench_pg_labels.py                       # 100 labellers, 30 s
    .venv/bin/python bench/bench_pg_labels.py --think 0             # closed loop: no pause
    .venv/bin/python bench/bench_pg_labels.py --labellers 50 --seconds 60 --database sqlite

A throwaway PostgreSQL cluster (``tests/pg_cluster.py``: Debian's server, 127.0.0.1, fsync and
synchronous commit on, as in production) or ``--pg-url``; a 1,000-object survey in a temporary
data root; the label API (``app.api.ROUTES``, the routes ``make run`` serves) in its own server
process. Each labeller is one HTTP client that posts a label (random object and class), waits
for the answer, looks at the next object for ``--think`` seconds on average (uniform 0.5-1.5x;
default 1 s, a fast keyboard labeller; 0: the next label at once, a stress test whose latency is
the server's throughput) and posts the next one, for ``--seconds``. The latency of a label is from sending
the request to reading the 201 (committed). At the end the stored labels are counted against the
acknowledged ones (none lost, none duplicated). Figures print and merge into
``bench/results/pg_labels.json`` (one entry per database). Timings are wall-clock on whatever
else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results_file import merge_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "pg_labels.json"

SERVER = """
import sys
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.web import Application
from app.api import ROUTES
server = HTTPServer(Application(ROUTES))
server.listen(int(sys.argv[1]), "127.0.0.1")
print("listening", flush=True)
IOLoop.current().start()
"""


def say(*parts: object) -> None:
    print(*parts, flush=True)


def make_survey(n: int) -> list[str]:
    """A small survey (noise images) named ``bench`` in the current data root; its ids."""
    import pandas as pd

    from backend.survey import SurveyWriter

    rng = np.random.default_rng(0)
    ids = [f"bench-{i:05d}" for i in range(n)]
    catalog = pd.DataFrame(
        {"object_id": ids, "ra": np.linspace(150, 151, n), "dec": np.linspace(2, 3, n)}
    )
    images = rng.normal(0, 1, (n, 3, 16, 16)).astype(np.float32)
    with SurveyWriter("bench", ["g", "r", "i"], (16, 16), "bench", pixel_scale=0.2) as writer:
        writer.append(images, catalog)
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    if server.stdout.readline().strip() != "listening":
        raise RuntimeError("the label API server did not start")
    return server, port


async def label_for(
    seconds: float, labellers: int, port: int, ids: list[str], classes: list[str], think: float
) -> tuple[list[float], int, dict[str, int]]:
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient(force_instance=True, max_clients=labellers)
    url = f"http://127.0.0.1:{port}/api/labels"
    latencies: list[float] = []
    errors: dict[str, int] = {}
    acknowledged = 0
    deadline = time.perf_counter() + seconds

    async def labeller(n: int) -> None:
        nonlocal acknowledged
        rng = random.Random(n)
        await asyncio.sleep(rng.uniform(0, think))  # labellers do not start in step
        while time.perf_counter() < deadline:
            body = json.dumps(
                {"survey": "bench", "object_id": rng.choice(ids), "value": rng.choice(classes),
                 "user": f"labeller-{n:03d}"}
            )  # fmt: skip
            start = time.perf_counter()
            answer = await client.fetch(
                url, method="POST", body=body, raise_error=False, request_timeout=120,
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            if answer.code == 201:
                latencies.append(time.perf_counter() - start)
                acknowledged += 1
            else:
                key = str(answer.code)
                errors[key] = errors.get(key, 0) + 1
            if think > 0:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))

    await asyncio.gather(*(labeller(n) for n in range(labellers)))
    client.close()
    return latencies, acknowledged, errors


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.pg_cluster import start_cluster

    cluster = None
    with tempfile.TemporaryDirectory(prefix="bench-pg-labels-") as tmp:
        env = {**os.environ, "LATENTSKY_HOME": str(Path(tmp) / "home"), "LATENTSKY_API_RATE": "0"}
        if args.database == "postgresql":
            if args.pg_url:
                env["DATABASE_URL"] = args.pg_url
            else:
                cluster = start_cluster(durable=True)
                env["DATABASE_URL"] = cluster.create_database("bench")
        else:
            env.pop("DATABASE_URL", None)
        os.environ.update(env)
        if args.database == "sqlite":
            os.environ.pop("DATABASE_URL", None)
        server = None
        try:
            from backend.labels import LabelStore, load_schema

            ids = make_survey(args.objects)
            classes = load_schema("bench").names
            store = LabelStore()  # database migrated before the clock starts
            server, port = start_server(env)
            say(
                f"{args.labellers} labellers x {args.seconds:g} s on {args.database}, "
                f"think {args.think:g} s ..."
            )
            started = time.perf_counter()
            latencies, acknowledged, errors = asyncio.run(
                label_for(args.seconds, args.labellers, port, ids, classes, args.think)
            )
            wall = time.perf_counter() - started
            stored = len(store.events("bench"))
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
            if cluster is not None:
                cluster.stop()
    ms = np.array(latencies) * 1000
    figures = {
        "database": args.database,
        "labellers": args.labellers,
        "think_s": args.think,
        "seconds": round(wall, 1),
        "labels_acknowledged": acknowledged,
        "labels_stored": stored,
        "labels_per_s": round(acknowledged / wall, 1),
        "errors": errors,
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "max_ms": round(float(ms.max()), 1) if len(ms) else None,
        "target_p95_ms": 300,
    }
    figures["p95_within_target"] = figures["p95_ms"] is not None and figures["p95_ms"] <= 300
    return figures


def merge(key: str, figures: dict[str, Any]) -> None:
    merge_results(RESULTS, key, figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labellers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between labels (s)")
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-url", help="an existing server's database instead of a throwaway one")
    args = parser.parse_args()
    figures = run(args)
    for key, value in figures.items():
        say(f"  {key:20} {value}")
    if figures["labels_stored"] != figures["labels_acknowledged"]:
        say("  MISMATCH: stored labels != acknowledged labels")
    merge(f"{args.database}_{args.labellers}_think{args.think:g}", figures)
    say(f"-> {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
