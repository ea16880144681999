"""``LATENTSKY_AUTH=oauth`` end to end: a real ``panel serve`` with Panel's generic OAuth provider,
configured as docs/deployment.md says, against an OpenID Connect provider on 127.0.0.1
(``tests/oidc_provider.py``), driven through the whole authorization-code flow by chromium (the
app must load for the login) and by an HTTP client: the app redirects to the provider, the user
approves, the provider redirects back with a code, Panel exchanges it at the token endpoint
(client id and secret of a registered client) and sets its login cookie.

Roles: an account's row in ``users`` wins; a login without a row gets ``LATENTSKY_DEFAULT_ROLE``
(``labeller`` here, so that a row saying ``viewer`` is seen to win). A denied authorization, a
forged code, a code used twice and a code brought back to another browser never log anyone in.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from backend.auth.users import UserStore
from backend.labels import load_schema
from backend.survey import Survey
from tests.oidc_provider import Provider, running_provider
from tests.served_app import HTTP_TIMEOUT, Server, stored_labels
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS

SURVEY = "tiny"
VIEWER = "vic@example.org"  # row in users: viewer
NEWCOMER = "nora@example.org"  # no row: LATENTSKY_DEFAULT_ROLE (labeller)
COOKIE_SECRET = "cookie-secret-for-oauth-tests-0123456789"
ENCRYPTION_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()  # as `panel oauth-secret`


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def server(
    home: Path,
    tiny_survey: Survey,
    tmp_path: Path,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Server]:
    database_url = f"sqlite:///{tmp_path / 'latentsky.db'}"
    monkeypatch.setenv("DATABASE_URL", database_url)
    UserStore().add(VIEWER, "viewer")  # an OAuth-only account (no password)

    def oauth_env(url: str) -> dict[str, str]:
        redirect_uri = f"{url}/login"
        key, secret = provider.register_client(redirect_uri)
        return {
            "LATENTSKY_AUTH": "oauth",
            "LATENTSKY_DEFAULT_ROLE": "labeller",
            "PANEL_OAUTH_PROVIDER": "generic",
            "PANEL_OAUTH_KEY": key,
            "PANEL_OAUTH_SECRET": secret,
            "PANEL_OAUTH_REDIRECT_URI": redirect_uri,
            "PANEL_OAUTH_AUTHORIZE_URL": provider.authorize_url,
            "PANEL_OAUTH_TOKEN_URL": provider.token_url,
            "PANEL_OAUTH_USER_URL": provider.userinfo_url,
            "PANEL_OAUTH_SCOPE": "openid,email,profile",
            "PANEL_COOKIE_SECRET": COOKIE_SECRET,
            "PANEL_OAUTH_ENCRYPTION": ENCRYPTION_KEY,
        }

    running = Server(home, database_url, tmp_path / "serve.log", env=oauth_env, survey=SURVEY)
    try:
        yield running
    finally:
        running.stop()


def _to_provider(session: requests.Session, server: Server, provider: Provider) -> str:
    """Open the app without a login: it must send the browser to the provider's authorize
    page; returns that page's URL (with Panel's state)."""
    page = session.get(f"{server.url}/", timeout=HTTP_TIMEOUT)
    assert page.status_code == 200, page.text[:500]
    assert page.url.startswith(provider.authorize_url), page.url
    query = parse_qs(urlsplit(page.url).query)
    assert query["redirect_uri"] == [f"{server.url}/login"]
    assert query["response_type"] == ["code"] and query["state"][0]
    return page.url


def _approve(session: requests.Session, authorize_page: str, login: str) -> str:
    """Approve at the provider as ``login``; returns the redirect back to the app (not followed)."""
    answer = session.post(
        authorize_page, data={"sub": login}, allow_redirects=False, timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 302, answer.text[:500]
    return answer.headers["Location"]


def _log_in(server: Server, provider: Provider, login: str) -> requests.Session:
    session = requests.Session()
    back = _approve(session, _to_provider(session, server, provider), login)
    assert back.startswith(f"{server.url}/login?") and "code=" in back
    page = session.get(back, timeout=HTTP_TIMEOUT)  # code -> token -> cookie -> the app
    assert page.status_code == 200, page.text[:500]
    assert page.url == f"{server.url}/main", page.url  # the app (Panel redirects / to it)
    return session


def _label(server: Server, session: requests.Session, ids: list[str], i: int) -> requests.Response:
    body = {"survey": SURVEY, "object_id": ids[i], "value": CLASSES[i % len(CLASSES)]}
    return server.post("/api/labels", {**body, "user": "mallory"}, session)


CLASSES = load_schema(SURVEY).names


@contextmanager
def _browser() -> Iterator[object]:
    """A chromium page (Debian's, as the browser tests use) that can reach 127.0.0.1 only (the
    provider's page links a stylesheet on a CDN); skips when chromium is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium); .ci/run does it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith("http://127.0.0.1")
                    else route.abort()
                ),
            )
            yield page
        finally:
            browser.close()


def _log_in_with_browser(server: Server, login: str) -> tuple[str, requests.Session]:
    """Log in as ``login`` in chromium, through the provider's form; (the app's 'Signed in as'
    line once the app has loaded, a requests session holding the browser's cookies)."""
    with _browser() as page:
        page.goto(f"{server.url}/", timeout=120_000)
        page.fill("input[type=text][name=sub]", login)
        page.click("button:has-text('Authorize')")
        page.wait_for_url(f"{server.url}/main", timeout=120_000)
        signed_in = page.locator(".ls-signed-in")
        signed_in.wait_for(timeout=120_000)
        line = signed_in.inner_text()
        session = requests.Session()
        for cookie in page.context.cookies(server.url):
            session.cookies.set(cookie["name"], cookie["value"], path=cookie["path"])
    return line, session


def test_oauth_login_serves_the_app_and_roles_decide_what_the_login_may_do(
    server: Server, provider: Provider, tiny_survey: Survey
) -> None:
    ids = tiny_survey.catalog["object_id"].astype(str).tolist()
    anonymous = requests.Session()
    assert _label(server, anonymous, ids, 0).status_code == 401
    thumb = f"{server.url}/thumb/{SURVEY}/0.png"
    assert anonymous.get(thumb, timeout=HTTP_TIMEOUT).status_code == 401

    # a login with a viewer row, in chromium: the app loads for it; it may browse, not label
    line, viewer = _log_in_with_browser(server, VIEWER)
    assert line.startswith(f"Signed in as {VIEWER} (viewer)"), line
    assert server.current(viewer)["count"] == 0
    assert viewer.get(thumb, timeout=HTTP_TIMEOUT).status_code == 200
    refused = _label(server, viewer, ids, 0)
    assert refused.status_code == 403, refused.text
    assert "labeller" in refused.json()["error"]

    # a login without a row: LATENTSKY_DEFAULT_ROLE (labeller); its labels carry the login
    newcomer = _log_in(server, provider, NEWCOMER)
    made = _label(server, newcomer, ids, 3)
    assert made.status_code == 201, made.text
    assert made.json()["user"] == NEWCOMER
    assert stored_labels(server.database_url, SURVEY) == [
        (NEWCOMER, ids[3], CLASSES[3 % len(CLASSES)], made.json()["id"])
    ]

    # a row added later wins over the default at the next request
    UserStore().add(NEWCOMER, "viewer")
    assert _label(server, newcomer, ids, 4).status_code == 403
    assert len(stored_labels(server.database_url, SURVEY)) == 1

    # logging out (the sidebar's link) ends the login
    assert newcomer.get(f"{server.url}/logout", timeout=HTTP_TIMEOUT).status_code == 200
    assert _label(server, newcomer, ids, 5).status_code == 401


def _no_login(server: Server, session: requests.Session, answer: requests.Response) -> None:
    assert answer.status_code == 401, (answer.status_code, answer.text[:300])
    assert "user" not in session.cookies.get_dict()
    body = {"survey": SURVEY, "object_id": "tiny-0000", "value": CLASSES[0], "user": "x"}
    assert server.post("/api/labels", body, session).status_code == 401


def test_refused_forged_and_replayed_codes_never_log_in(server: Server, provider: Provider) -> None:
    # the user denies at the provider: it redirects back with error=access_denied
    session = requests.Session()
    page = _to_provider(session, server, provider)
    back = session.post(page, data={"action": "deny"}, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert back.status_code == 302 and "error=access_denied" in back.headers["Location"]
    _no_login(server, session, session.get(back.headers["Location"], timeout=HTTP_TIMEOUT))

    # a code the provider never issued, with a valid state
    session = requests.Session()
    state = parse_qs(urlsplit(_to_provider(session, server, provider)).query)["state"][0]
    forged = session.get(
        f"{server.url}/login", params={"code": "forged-code", "state": state}, timeout=HTTP_TIMEOUT
    )
    _no_login(server, session, forged)

    # a real code, used once by its owner, replayed in another browser
    owner = requests.Session()
    back = _approve(owner, _to_provider(owner, server, provider), NEWCOMER)
    code = parse_qs(urlsplit(back).query)["code"][0]
    assert owner.get(back, timeout=HTTP_TIMEOUT).url == f"{server.url}/main"
    thief = requests.Session()
    state = parse_qs(urlsplit(_to_provider(thief, server, provider)).query)["state"][0]
    replayed = thief.get(
        f"{server.url}/login", params={"code": code, "state": state}, timeout=HTTP_TIMEOUT
    )
    _no_login(server, thief, replayed)

    # a code with a state that is not this browser's (login CSRF)
    victim = requests.Session()
    _to_provider(victim, server, provider)
    attacker = requests.Session()
    back = _approve(attacker, _to_provider(attacker, server, provider), VIEWER)
    _no_login(server, victim, victim.get(back, timeout=HTTP_TIMEOUT))
