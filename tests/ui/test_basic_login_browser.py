"""``LATENTSKY_AUTH=basic`` in a browser: ``panel serve`` with an account made by ``python -m
backend users add``; the login page refuses a wrong password, the right one lands in the app
signed in ("Signed in as NAME (role)", no name box), and a label given in the browser is stored
under the account. An account with too many failed logins is refused even with its password,
and the login page says why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.labels import LabelStore
from backend.survey import Survey
from tests.conftest import REPO_ROOT
from tests.ui.pages import open_tab

pytestmark = pytest.mark.ui

PASSWORD = "correct horse battery"


def add_user(name: str, role: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backend", "users", "add", name, "--role", role, "--password-stdin"],
        input=PASSWORD + "\n", cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def log_in(page: object, url: str, name: str, password: str) -> None:
    page.goto(url + "/main", wait_until="domcontentloaded")
    page.locator("input[name='username']").fill(name)
    page.locator("input[name='password']").fill(password)
    page.locator("form button, form input[type='submit']").first.click()
    page.wait_for_load_state("domcontentloaded")


def test_basic_login_in_the_browser(
    tiny_survey: Survey,
    home: Path,
    serve_app: callable,
    page: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LATENTSKY_AUTH", "basic")
    monkeypatch.setenv("PANEL_COOKIE_SECRET", "a test secret that signs the login cookies")
    monkeypatch.setenv("LATENTSKY_LOGIN_LOCKOUT", "2/900")
    add_user("ana", "labeller")
    add_user("bob", "viewer")
    url = serve_app()

    log_in(page, url, "ana", "not ana's password")
    page.get_by_text("Invalid username or password").wait_for(timeout=30_000)
    assert "/login" in page.url
    page.wait_for_function(  # Panel's logo, served by the app itself (not from a CDN)
        "() => { const i = document.querySelector('img#logo');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=30_000,
    )

    log_in(page, url, "bob", "wrong once")
    log_in(page, url, "bob", "wrong twice")
    log_in(page, url, "bob", PASSWORD)  # locked out: refused, and told why
    page.get_by_text("Too many failed logins for this account").wait_for(timeout=30_000)
    assert "/login" in page.url

    log_in(page, url, "ana", PASSWORD)
    page.get_by_text("Signed in as").first.wait_for(timeout=60_000)
    assert page.get_by_text("Signed in as ana (labeller)").count() == 1
    name_box = "input[placeholder='e.g. Vera Rubin'] >> visible=true"
    assert page.locator(name_box).count() == 0  # no name box when logged in
    open_tab(page, "Label")
    button = page.locator(".bk-btn", has_text="1 ·").first
    button.wait_for(timeout=60_000)
    button.click()
    page.get_by_text("✓ stored").first.wait_for(timeout=30_000)
    events = LabelStore().events("tiny")
    assert events["user"].tolist() == ["ana"]
