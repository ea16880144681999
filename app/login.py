"""The login page of ``LATENTSKY_AUTH=basic``: Panel's basic login form, checked against the
``users`` table (argon2id hashes, :class:`backend.auth.users.UserStore`) instead of a password
file. Registered as Panel auth provider ``latentsky`` by :func:`app.serving.configure`, the way
Panel's own PAM login is (a :class:`panel.auth.BasicLoginHandler` with its own check).

Failed logins are counted per account and per client address in the database
(:mod:`backend.auth.lockout`): past the limit the form answers "Too many failed logins ...: try
again in N minutes", even for the right password, until the failures age out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import tornado.escape
from panel.auth import BasicLoginHandler, _validate_next_url
from panel.io.resources import LOCAL_DIST
from panel.io.state import state
from tornado.ioloop import IOLoop

from backend.auth.lockout import LoginLocked
from backend.auth.roles import Account
from backend.auth.users import UserStore

PROVIDER = "latentsky"
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="login")  # argon2 costs ~50 ms


def verify(name: str, password: str, client: str | None = None) -> Account | None:
    """The account when the password is right (:class:`LoginLocked` while locked out)."""
    return UserStore().login(name, password, client)


class LatentSkyLoginHandler(BasicLoginHandler):
    """Panel's login form; the password is checked off the event loop and the cookie carries
    the account's (normalised) name."""

    def get(self) -> None:
        """Panel's login page, its icon and logo from this server (Panel's own handler links
        them from Panel's CDN: a page of this app loads nothing from outside)."""
        errormessage = self.get_argument("error", "")
        next_url = _validate_next_url(self.get_argument("next", state.base_url))
        if next_url:
            self.set_cookie("next_url", next_url)
        self.write(
            self._login_template.render(
                login_endpoint=self._login_endpoint,
                errormessage=errormessage,
                PANEL_CDN=LOCAL_DIST,  # relative: <prefix>/static/extensions/panel/
            )
        )

    def _validate(self, username: str, password: str) -> bool:
        try:
            return verify(username, password, self.request.remote_ip) is not None
        except LoginLocked:
            return False

    async def post(self) -> None:
        username = self.get_argument("username", "")
        password = self.get_argument("password", "")
        client = self.request.remote_ip
        try:
            account = await IOLoop.current().run_in_executor(
                _POOL, verify, username, password, client
            )
        except LoginLocked as locked:
            self.set_header("Retry-After", str(int(locked.retry_after + 0.999)))
            self.redirect(self.request.path + "?error=" + tornado.escape.url_escape(str(locked)))
            return
        if account is None or account.name is None:
            error = "?error=" + tornado.escape.url_escape("Invalid username or password!")
            self.redirect(self.request.path + error)
            return
        self.set_current_user(account.name)
        self.redirect(_validate_next_url(self.get_cookie("next_url", state.base_url)))
