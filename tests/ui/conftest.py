"""Browser tests: serve the app with `panel serve` on 127.0.0.1 and drive Debian's chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(
    port: int, proc: subprocess.Popen, timeout: float = 60.0, log: Path | None = None
) -> None:
    """Wait until ``proc`` listens on ``port``; a process that exits first is reported with
    what it printed (its piped stdout, or the file ``log``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            printed = log.read_text(errors="replace")[-4000:] if log else ""
            if proc.stdout is not None and not proc.stdout.closed:
                printed = proc.stdout.read()
            raise RuntimeError(f"panel serve exited early ({proc.returncode}):\n{printed}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"panel serve did not listen on {port} within {timeout} s")


@contextmanager
def panel_server(env: Mapping[str, str], threads: int | None = 2) -> Iterator[str]:
    """Serve the app with ``panel serve`` on a free 127.0.0.1 port, with ``env`` over this
    process's environment (``threads``: ``--num-threads``, None: no thread pool); yields its
    base URL and stops the server on exit.

    The server's output goes to a temporary file (a pipe nobody reads would fill and stall a
    chatty server); a server that exits before listening is reported with its last lines."""
    port = _free_port()
    cmd = [
        str(Path(sys.executable).with_name("panel")), "serve", "app/main.py",
        "--address", "127.0.0.1", "--port", str(port),
        "--allow-websocket-origin", f"127.0.0.1:{port}", "--plugins", "app.routes",
        *(["--num-threads", str(threads)] if threads is not None else []),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="latentsky-serve-") as tmp:
        log = Path(tmp) / "panel.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            _wait_for_port(port, proc, log=log)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def serve_app(home: Path) -> Iterator[Callable[[], str]]:
    """Start the app on a free loopback port against the test's data root; yields a URL maker
    (each call starts one more server; all stop at the end of the test)."""
    with ExitStack() as servers:
        yield lambda: servers.enter_context(panel_server({"LATENTSKY_HOME": str(home)}))


def _is_outside(url: str) -> bool:
    return not url.startswith(("http://127.0.0.1", "data:", "blob:", "about:"))


FAILURES = Path(os.environ.get("LATENTSKY_UI_FAILURES", "/tmp/latentsky-ui-failures"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Remember each phase's report on the test item (the page fixture reads it)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh chromium page; skips with the reason when Debian's chromium is missing.
    A failing test leaves a screenshot in $LATENTSKY_UI_FAILURES (/tmp/latentsky-ui-failures)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (apt-get install chromium); .ci/run does it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        pg = context.new_page()
        pg.console_errors = []
        pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
        pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
        outside: list[str] = []  # the app must load nothing from outside its server
        pg.on("request", lambda r: _is_outside(r.url) and outside.append(r.url))
        yield pg
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            FAILURES.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(FAILURES / f"{request.node.name}.png"), full_page=True)
        browser.close()
    assert not outside, f"the page requested external resources: {outside[:5]}"


# -- the demo survey, prepared once per test session ----------------------------------------
LATENT_STEPS = ("map", "index", "score")


def _run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> None:
    out = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-4000:]}")


def _latent_products(env: dict[str, str]) -> None:
    """2-D map, similarity index and anomaly scores (the CLI commands when registered)."""
    from backend.cli import COMMANDS

    if all(step in dict(COMMANDS) for step in LATENT_STEPS):
        for step in LATENT_STEPS:
            _run([sys.executable, "-m", "backend", step, "--survey", "demo"], env)
        return
    code = (
        "from backend.latent.pipeline import make_index, make_map, make_scores\n"
        "make_map('demo'); make_index('demo'); make_scores('demo')\n"
    )
    _run([sys.executable, "-c", code], env)


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with the quick demo survey (400 galaxies), its models and latent products.

    ``LATENTSKY_UI_HOME=path`` uses an already prepared data root instead (e.g. ``var`` with
    the full demo, for screenshots); the tests only read it: labels and scores go to
    :func:`ui_database`.
    """
    given = os.environ.get("LATENTSKY_UI_HOME")
    if given:
        return Path(given).resolve()
    root = tmp_path_factory.mktemp("ui-demo") / "home"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["LATENTSKY_HOME"] = str(root)
    _run([sys.executable, "-m", "backend", "prepare", "--survey", "demo", "--quick"], env)
    _latent_products(env)
    return root


@pytest.fixture(scope="session")
def ui_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A throw-away database for the labels and interest scores the tests give."""
    return f"sqlite:///{tmp_path_factory.mktemp('ui-db') / 'latentsky.db'}"


@pytest.fixture(scope="session")
def demo_url(demo_home: Path, ui_database: str) -> Iterator[str]:
    """The app served once for the session against ``demo_home``."""
    env = {"LATENTSKY_HOME": str(demo_home), "DATABASE_URL": ui_database}
    if os.environ.get("LATENTSKY_UI_HOME"):  # a shared data root: its job queue is not ours
        env["LATENTSKY_RETRAIN_EVERY"] = "1000000000"
    with panel_server(env, threads=4) as url:
        yield f"{url}/main"


@pytest.fixture
def demo_env(demo_home: Path, ui_database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test process at the served data root and database (to read labels, say)."""
    monkeypatch.setenv("LATENTSKY_HOME", str(demo_home))
    monkeypatch.setenv("DATABASE_URL", ui_database)
    return demo_home


def screenshot(page: object, name: str, height: int = 1000) -> None:
    """Save docs/img/<name>.png (1440 x ``height``, scrolled to the top), only when
    LATENTSKY_SCREENSHOTS=1: they are tracked files."""
    if os.environ.get("LATENTSKY_SCREENSHOTS") != "1":
        return
    size = page.viewport_size
    page.set_viewport_size({"width": 1440, "height": height})
    page.locator(".bk-tab").first.scroll_into_view_if_needed()
    page.mouse.move(5, 5)  # no hover highlight in the picture
    time.sleep(1.5)  # re-layout, re-aggregation of the map at the new size
    page.screenshot(path=str(REPO_ROOT / "docs" / "img" / f"{name}.png"))
    page.set_viewport_size(size)
