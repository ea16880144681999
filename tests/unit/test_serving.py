"""A server without authentication listens on localhost only; ``LATENTSKY_AUTH=basic`` logs in
through Panel's form against the users table (a real ``panel serve``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClient, HTTPClientError

from app.serving import ServeError, configure
from backend.auth.users import UserStore
from backend.survey import Survey
from tests.conftest import REPO_ROOT

PANEL = str(Path(sys.executable).parent / "panel")


def serve(*options: str) -> list[str]:
    return [PANEL, "serve", "app/main.py", *options, "--plugins", "app.routes"]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.20", "example.org", None])
def test_no_auth_off_localhost_refuses_to_start(
    home: Path, capsys: pytest.CaptureFixture[str], address: str | None
) -> None:
    argv = serve("--address", address) if address else serve()
    with pytest.raises(ServeError) as refused:
        configure(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to serve on") and len(err.strip().splitlines()) == 1
    assert "LATENTSKY_AUTH=basic" in err and "LATENTSKY_ALLOW_UNAUTHENTICATED=1" in err


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "127.0.1.1"])
def test_no_auth_on_localhost_serves(home: Path, address: str) -> None:
    assert configure(serve(f"--address={address}")) == "none"


def test_the_override_and_the_auth_modes(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSKY_ALLOW_UNAUTHENTICATED", "1")
    assert configure(serve("--address", "0.0.0.0")) == "none"
    monkeypatch.delenv("LATENTSKY_ALLOW_UNAUTHENTICATED")
    monkeypatch.setenv("LATENTSKY_AUTH", "basic")
    with pytest.raises(ServeError, match="cookie secret"):
        configure(serve("--address", "0.0.0.0"))
    monkeypatch.setenv("PANEL_COOKIE_SECRET", "s" * 32)
    with pytest.raises(ServeError, match="drop --basic-auth"):
        configure(serve("--address", "0.0.0.0", "--basic-auth", "creds.json"))
    monkeypatch.delenv("PANEL_OAUTH_PROVIDER", raising=False)
    assert configure(serve("--address", "0.0.0.0")) == "basic"
    assert os.environ["PANEL_OAUTH_PROVIDER"] == "latentsky"
    monkeypatch.setenv("LATENTSKY_AUTH", "oauth")
    monkeypatch.delenv("PANEL_OAUTH_PROVIDER")
    with pytest.raises(ServeError, match="PANEL_OAUTH_PROVIDER"):
        configure(serve("--address", "0.0.0.0"))
    monkeypatch.setenv("PANEL_OAUTH_PROVIDER", "github")
    with pytest.raises(ServeError, match="PANEL_OAUTH_KEY"):
        configure(serve("--address", "0.0.0.0"))
    monkeypatch.setenv("PANEL_OAUTH_KEY", "key")
    monkeypatch.setenv("PANEL_OAUTH_SECRET", "secret")
    monkeypatch.delenv("PANEL_OAUTH_ENCRYPTION", raising=False)
    with pytest.raises(ServeError, match="PANEL_OAUTH_ENCRYPTION"):
        configure(serve("--address", "0.0.0.0"))  # tokens would sit in cookies in clear
    assert configure(serve("--address", "0.0.0.0", "--oauth-encryption-key", "k" * 44)) == "oauth"
    monkeypatch.setenv("PANEL_OAUTH_ENCRYPTION", "k" * 44)
    assert configure(serve("--address", "0.0.0.0")) == "oauth"


def test_oauth_provider_must_be_one_panel_knows_and_generic_needs_its_endpoints(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Else Panel starts and every login answers 500 (a KeyError for an unknown provider; no
    URL to redirect to or to fetch the token from for a generic one)."""
    for name in ("PANEL_OAUTH_EXTRA_PARAMS", "PANEL_OAUTH_AUTHORIZE_URL", "PANEL_OAUTH_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LATENTSKY_AUTH", "oauth")
    monkeypatch.setenv("PANEL_COOKIE_SECRET", "s" * 32)
    monkeypatch.setenv("PANEL_OAUTH_KEY", "key")
    monkeypatch.setenv("PANEL_OAUTH_SECRET", "secret")
    monkeypatch.setenv("PANEL_OAUTH_ENCRYPTION", "k" * 44)
    monkeypatch.setenv("PANEL_OAUTH_PROVIDER", "githib")
    with pytest.raises(ServeError, match="'githib' is not one of Panel's OAuth providers"):
        configure(serve("--address", "0.0.0.0"))
    assert "github" in capsys.readouterr().err
    monkeypatch.setenv("PANEL_OAUTH_PROVIDER", "generic")
    with pytest.raises(ServeError, match="PANEL_OAUTH_AUTHORIZE_URL"):
        configure(serve("--address", "0.0.0.0"))
    monkeypatch.setenv("PANEL_OAUTH_AUTHORIZE_URL", "https://idp.example.org/authorize")
    with pytest.raises(ServeError, match="PANEL_OAUTH_TOKEN_URL"):
        configure(serve("--address", "0.0.0.0"))
    extra = "{'TOKEN_URL': 'https://idp.example.org/token'}"
    assert configure(serve("--address", "0.0.0.0", "--oauth-extra-params", extra)) == "oauth"
    monkeypatch.setenv("PANEL_OAUTH_EXTRA_PARAMS", extra)
    assert configure(serve("--address", "0.0.0.0")) == "oauth"
    monkeypatch.setenv("PANEL_OAUTH_EXTRA_PARAMS", "{'TOKEN_URL': ")
    with pytest.raises(ServeError, match="PANEL_OAUTH_EXTRA_PARAMS"):
        configure(serve("--address", "0.0.0.0"))


def test_a_test_run_is_not_a_server(home: Path) -> None:
    assert configure(["pytest", "-q"]) is None


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANEL_", "LATENTSKY_"))}
    return {**env, "LATENTSKY_HOME": str(home), "OMP_NUM_THREADS": "1", **extra}


@pytest.mark.slow
def test_panel_serve_on_every_interface_without_auth_exits(home: Path) -> None:
    done = subprocess.run(
        serve("--address", "0.0.0.0", "--port", "0"), cwd=REPO_ROOT, env=_env(home),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: refusing to serve on 0.0.0.0 without authentication" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_basic_auth_logs_in_against_the_users_table(tiny_survey: Survey, home: Path) -> None:
    UserStore().add("lena", "labeller", "lena's long password")
    UserStore().add("vera", "viewer", "vera's long password")
    port = _free_port()
    env = _env(home, LATENTSKY_AUTH="basic", PANEL_COOKIE_SECRET="x" * 40)
    server = subprocess.Popen(
        serve("--address", "127.0.0.1", "--port", str(port)), cwd=REPO_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    client = HTTPClient()
    try:
        while True:  # until the server answers (or has died)
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                client.fetch(f"{base}/login", request_timeout=5)
                break
            except (ConnectionError, OSError):
                time.sleep(0.5)

        def login(name: str, password: str) -> str:
            body = urllib.parse.urlencode({"username": name, "password": password})
            reply = client.fetch(
                f"{base}/login", method="POST", body=body, follow_redirects=False,
                raise_error=False,
            )  # fmt: skip
            cookies = reply.headers.get_list("Set-Cookie")
            return "; ".join(c.split(";", 1)[0] for c in cookies)

        def get(path: str, cookie: str = "", **kw: object) -> int:
            try:
                return client.fetch(
                    base + path, headers={"Cookie": cookie, "Content-Type": "application/json"},
                    follow_redirects=False, **kw,
                ).code  # fmt: skip
            except HTTPClientError as exc:
                return exc.code

        assert not re.search(r"\buser=", login("lena", "wrong password!"))
        assert get("/thumb/tiny/3.png") == 401
        lena, vera = login("lena", "lena's long password"), login("vera", "vera's long password")
        assert re.search(r"\buser=", lena)
        assert get("/thumb/tiny/3.png", lena) == 200
        assert get("/thumb/tiny/3.png", vera) == 200
        label = '{"survey": "tiny", "object_id": "tiny-0003", "value": "merger", "user": "x"}'
        assert get("/api/labels", vera, method="POST", body=label) == 403
        assert get("/api/labels", lena, method="POST", body=label) == 201
        assert get("/api/labels", "", method="POST", body=label) == 401
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=60)
