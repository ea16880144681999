"""The real web app in its own process, for tests and benchmarks that go through HTTP.

:class:`Server` runs ``python -m panel serve app/main.py --plugins app.routes`` on 127.0.0.1
against a data root and a database, waits until the label API answers and can be killed as
``kill -9`` does (:meth:`Server.kill9`) or restarted on the same port (:meth:`Server.restart`).
:func:`stored_labels` reads what the database holds, bypassing the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120.0  # seconds; generous for a loaded 2-core machine
HTTP_TIMEOUT = (10, 90)  # connect, read

EnvFor = Callable[[str], Mapping[str, str]]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (it can be taken before it is bound)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``panel serve`` of the app in its own process (``proc`` is the server itself).

    ``env``: extra environment, or a function of the server's URL returning it (an OAuth
    redirect URI names the port); ``PANEL_*`` variables of the caller are never inherited.
    ``port``: the port to use (default: a free one, retried when taken meanwhile).
    ``survey``: a survey of the data root, asked for to tell that the server is ready.
    """

    def __init__(
        self,
        home: Path,
        database_url: str,
        log: Path,
        args: tuple[str, ...] = (),
        *,
        env: Mapping[str, str] | EnvFor | None = None,
        port: int | None = None,
        survey: str = "tiny",
    ) -> None:
        self.home, self.database_url, self.log, self.args = home, database_url, log, args
        self.env, self.survey = env, survey
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.url = ""
        for _ in range(1 if port else 3):  # a free port can be taken between probe and bind
            if self._start(port or free_port()):
                return
        raise RuntimeError(f"panel serve did not start:\n{self.log.read_text()[-4000:]}")

    def _environment(self, url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANEL_")}
        env.update(LATENTSKY_HOME=str(self.home), DATABASE_URL=self.database_url)
        extra = self.env(url) if callable(self.env) else (self.env or {})
        env.update(extra)
        return env

    def _start(self, port: int) -> bool:
        cmd = [
            sys.executable, "-m", "panel", "serve", "app/main.py", "--plugins", "app.routes",
            "--address", "127.0.0.1", "--port", str(port),
            "--allow-websocket-origin", f"127.0.0.1:{port}", *self.args,
        ]  # fmt: skip
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=self._environment(self.url), stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:  # ready when the label API answers (plugin loaded, database reachable)
                r = requests.get(
                    f"{self.url}/api/labels", params={"survey": self.survey}, timeout=10
                )
                if r.status_code in (200, 401):  # 401: auth is on
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"panel serve not ready in {START_TIMEOUT} s:\n{self.log.read_text()}")

    def kill9(self) -> None:
        """SIGKILL, as ``kill -9``: no shutdown code runs."""
        assert self.proc is not None and self.proc.poll() is None, "server not running"
        self.proc.kill()
        self.proc.wait(30)

    def restart(self) -> None:
        """Start again on the same port (after :meth:`kill9` or :meth:`stop`)."""
        assert self.proc is None or self.proc.poll() is not None, "server still running"
        if not self._start(self.port):
            raise RuntimeError(f"panel serve did not restart:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    # -- the label API -------------------------------------------------------------------------
    def post(self, path: str, body: object, session: requests.Session | None = None):
        return (session or requests).post(f"{self.url}{path}", json=body, timeout=HTTP_TIMEOUT)

    def current(self, session: requests.Session | None = None, **params: str) -> dict:
        r = (session or requests).get(
            f"{self.url}/api/labels", params={"survey": self.survey, **params},
            timeout=HTTP_TIMEOUT,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()


def stored_labels(database_url: str, survey: str) -> list[tuple[str, str, str, int]]:
    """Every label event (not undos) of ``survey`` in the database: (user, object_id, value, id),
    in storage order; a list, so a label stored twice shows twice."""
    from backend.labels import LabelStore

    events = LabelStore(database_url).events(survey)
    if events.empty:
        return []
    labels = events[events["value"].notna()]
    return [
        (str(r.user), str(r.object_id), str(r.value), int(r.id))
        for r in labels[["user", "object_id", "value", "id"]].itertuples(index=False)
    ]
