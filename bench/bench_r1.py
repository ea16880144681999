"""R1 at full size: 50 clients post labels for 60 s to the real app, the server is killed with
``kill -9`` mid-burst and restarted; every acknowledged label must be stored exactly once.

    .venv/bin/python bench/bench_r1.py                            # SQLite, 50 clients, 60 s
    .venv/bin/python bench/bench_r1.py --db postgresql            # a throwaway PostgreSQL
    .venv/bin/python bench/bench_r1.py --clients 20 --seconds 20 --json /tmp/r1.json

The server is ``panel serve app/main.py --plugins app.routes`` on 127.0.0.1
(``tests/served_app.py``, as the R1 tests serve it), on a 1,000-object survey in a temporary
data root (``bench_pg_labels.make_survey``), with a SQLite file there or a database of a
throwaway PostgreSQL cluster (``tests/pg_cluster.py``; durable: fsync and synchronous commit on).
Each client is one thread and one HTTP connection labelling as its own user, each object at most
once, with no pause: it posts, waits for the answer and posts the next. A label is acknowledged
when its POST answered 201 with an event id; its latency runs from sending to that answer. At
``--kill-at`` of the run the server gets SIGKILL and is started again on the same port at once;
clients whose request failed (connection cut or refused) count it as not acknowledged and go on
with their next object until the run ends. Then, through the restarted server and directly in
the database: lost = acknowledged labels missing, duplicated = labels stored more than once (a
user's object twice, or an event id acknowledged twice). Figures print and merge into
``bench/results/r1.json`` (key ``<db>_<clients>x<seconds>s``), with the load average before and
after; latencies are wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results_file import merge_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "r1.json"
SURVEY = "bench"  # bench_pg_labels.make_survey's
RETRY_PAUSE = 0.2  # seconds a client waits after a failed request (server down)


def say(*parts: object) -> None:
    print(*parts, flush=True)


class Burst:
    """``clients`` threads labelling through ``url`` until ``deadline`` (time.monotonic)."""

    def __init__(self, url: str, ids: list[str], classes: list[str], clients: int) -> None:
        self.url, self.ids, self.classes, self.clients = url, ids, classes, clients
        self.lock = threading.Lock()
        self.acked: list[tuple[str, str, str, int]] = []
        self.latencies: list[float] = []
        self.failed: collections.Counter[str] = collections.Counter()  # not acknowledged
        self.answers: collections.Counter[int] = collections.Counter()  # unexpected statuses
        self.deadline = 0.0
        self.out_of_objects = 0  # clients that labelled every object before the end

    def client(self, k: int) -> None:
        import requests

        from tests.served_app import HTTP_TIMEOUT

        user = f"r1-{k:02d}"
        with requests.Session() as session:
            for i in range(len(self.ids)):
                if time.monotonic() >= self.deadline:
                    return
                oid = self.ids[(i + 7 * k) % len(self.ids)]
                value = self.classes[(i + k) % len(self.classes)]
                body = {"survey": SURVEY, "object_id": oid, "value": value, "user": user}
                start = time.perf_counter()
                try:
                    r = session.post(f"{self.url}/api/labels", json=body, timeout=HTTP_TIMEOUT)
                    event = int(r.json()["id"]) if r.status_code == 201 else None
                except (requests.RequestException, ValueError, KeyError) as exc:
                    with self.lock:
                        self.failed[type(exc).__name__] += 1
                    time.sleep(RETRY_PAUSE)
                    continue
                elapsed = time.perf_counter() - start
                with self.lock:
                    if event is None:
                        self.answers[r.status_code] += 1
                    else:
                        self.acked.append((user, oid, value, event))
                        self.latencies.append(elapsed)
        if time.monotonic() < self.deadline:
            with self.lock:
                self.out_of_objects += 1

    def run(self, seconds: float) -> list[threading.Thread]:
        self.deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(target=self.client, args=(k,), daemon=True)
            for k in range(self.clients)
        ]
        for t in threads:
            t.start()
        return threads


def _database(kind: str, tmp: Path) -> tuple[str, Any]:
    """(DATABASE_URL, the PostgreSQL cluster to stop or None)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'latentsky.db'}", None
    from tests.pg_cluster import start_cluster

    cluster = start_cluster(durable=True)
    return cluster.create_database("r1"), cluster


def _ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, q)), 1) if values else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.served_app import Server, stored_labels

    cluster = None
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-r1-") as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        server = None
        try:
            database_url, cluster = _database(args.db, tmp)
            os.environ.update(LATENTSKY_HOME=str(home), DATABASE_URL=database_url)
            from backend.labels import LabelStore, load_schema
            from bench.bench_pg_labels import make_survey

            ids = make_survey(args.objects)
            classes = load_schema(SURVEY).names
            LabelStore(database_url)  # migrated before the clock starts
            server = Server(home, database_url, tmp / "serve.log", survey=SURVEY)
            say(f"{args.clients} clients x {args.seconds:g} s on {args.db}, kill -9 at "
                f"{args.kill_at * args.seconds:.0f} s ...")  # fmt: skip
            burst = Burst(server.url, ids, classes, args.clients)
            started = time.monotonic()
            threads = burst.run(args.seconds)
            time.sleep(max(0.0, started + args.kill_at * args.seconds - time.monotonic()))
            acked_before_kill = len(burst.acked)
            server.kill9()
            killed_at = time.monotonic() - started
            server.restart()
            restarted_after = time.monotonic() - started - killed_at
            say(f"  killed at {killed_at:.1f} s with {acked_before_kill} acknowledged; "
                f"serving again {restarted_after:.1f} s later")  # fmt: skip
            for t in threads:
                t.join(args.seconds + 300)
            if any(t.is_alive() for t in threads):
                raise RuntimeError("a client thread hung")
            wall = time.monotonic() - started

            acked = burst.acked
            stored = stored_labels(database_url, SURVEY)
            served = server.current()["labels"]
        finally:
            if server is not None:
                server.stop()
            if cluster is not None:
                cluster.stop()
    stored_set = set(stored)
    per_user_object = collections.Counter((u, o) for u, o, _, _ in stored)
    served_set = {(x["user"], x["object_id"], x["value"], int(x["id"])) for x in served}
    figures = {
        "database": args.db,
        "clients": args.clients,
        "seconds": round(wall, 1),
        "acknowledged": len(acked),
        "acknowledged_before_kill": acked_before_kill,
        "killed_at_s": round(killed_at, 1),
        "restart_s": round(restarted_after, 1),
        "lost": len(set(acked) - stored_set),
        "lost_by_restarted_server": len(set(acked) - served_set),
        "duplicated": sum(n - 1 for n in per_user_object.values())
        + (len(acked) - len({a[3] for a in acked})),
        "stored": len(stored),
        "stored_unacknowledged": len(stored_set - set(acked)),
        "failed_requests": dict(burst.failed),
        "unexpected_answers": {str(k): v for k, v in burst.answers.items()},
        "clients_out_of_objects": burst.out_of_objects,
        "labels_per_s": round(len(acked) / wall, 1),
        "p50_ms": _ms(burst.latencies, 50),
        "p95_ms": _ms(burst.latencies, 95),
        "p99_ms": _ms(burst.latencies, 99),
        "max_ms": round(max(burst.latencies) * 1000, 1) if burst.latencies else None,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    figures["target_met"] = figures["lost"] == 0 and figures["duplicated"] == 0
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of the run")
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file to merge into")
    args = parser.parse_args()
    if not 0 < args.kill_at < 1:
        parser.error("--kill-at must be between 0 and 1")
    figures = run(args)
    for key, value in figures.items():
        say(f"  {key:26} {value}")
    merge_results(args.json, f"{args.db}_{args.clients}x{args.seconds:g}s", figures)
    say(f"-> {args.json}")
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
