"""The one way the tests serve the app (tests/ui/conftest.py's ``panel_server``): it answers on
loopback, stops on exit, and a server that dies at start says why."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from tests.ui.conftest import panel_server


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


def test_serves_the_app_on_loopback_and_stops_on_exit(home: Path) -> None:
    with panel_server({"LATENTSKY_HOME": str(home)}) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/main", timeout=60) as reply:
            assert reply.status == 200
            assert b"bokeh" in reply.read().lower()
    assert not _listening(url), "the server still listens after the block"


def test_a_server_that_dies_at_start_is_reported_with_its_output(home: Path) -> None:
    env = {"LATENTSKY_HOME": str(home), "PYTHONHOME": str(home / "no-such-python")}
    server = panel_server(env)
    with pytest.raises(RuntimeError, match=r"exited early[\s\S]*(PYTHONHOME|no-such-python)"):
        server.__enter__()
