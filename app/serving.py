"""What ``panel serve ... --plugins app.routes`` checks and sets up before it listens.

Panel imports the plugin :mod:`app.routes` while it builds the server, after it has read its
own options and before it binds a socket; the plugin calls :func:`configure` with the command
line, so the rules hold however the server is started (``make run``, the Procfile, by hand):

- ``LATENTSKY_AUTH=none`` is only for a server bound to localhost (``make run`` binds
  127.0.0.1). Any other ``--address`` (or none: every interface) stops the start with one
  ``error:`` line, unless ``LATENTSKY_ALLOW_UNAUTHENTICATED=1``.
- ``basic``: Panel's login form checked against the ``users`` table (:mod:`app.login`,
  registered as Panel auth provider ``latentsky``); needs a cookie secret
  (``PANEL_COOKIE_SECRET`` or ``--cookie-secret``) and no other Panel authentication.
- ``oauth``: Panel's OAuth provider from ``PANEL_OAUTH_PROVIDER``/``--oauth-provider``
  (github, google, generic OIDC...), one Panel knows, with its key, secret, a cookie secret and
  a key that encrypts the tokens kept in cookies; a generic provider with its authorize and
  token endpoints.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from backend.auth.serving import bind_address, serve_refusal
from backend.config import get_settings


class ServeError(SystemExit):
    """The server must not start: one ``error:`` line, exit status 2."""

    def __init__(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_panel_serve(argv: list[str]) -> bool:
    """Whether ``argv`` is a ``panel serve``/``bokeh serve`` command line (not a test run)."""
    if len(argv) < 2 or argv[1] != "serve":
        return False
    prog = Path(argv[0])
    return prog.name in ("panel", "bokeh") or (
        prog.name == "__main__.py" and prog.parent.name in ("panel", "bokeh")
    )


def _option(argv: list[str], name: str, env: str) -> str | None:
    """The value of ``--name`` on the command line, else of the environment variable ``env``."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return os.environ.get(env) or None


def configure(argv: list[str] | None = None) -> str | None:
    """Check (and for ``basic``, install) authentication for a ``panel serve`` starting with
    ``argv`` (default ``sys.argv``); returns the auth mode, or None when ``argv`` is not a
    server's. Raises :class:`ServeError` when the server must not start."""
    argv = sys.argv if argv is None else argv
    if not is_panel_serve(argv):
        return None
    address, unix = bind_address(argv)
    why = serve_refusal(address, unix)
    if why is not None:
        raise ServeError(why)
    mode = get_settings().auth
    if mode == "none":
        return mode
    if not _option(argv, "--cookie-secret", "PANEL_COOKIE_SECRET") and not os.environ.get(
        "BOKEH_COOKIE_SECRET"
    ):
        raise ServeError(
            f"LATENTSKY_AUTH={mode} needs a cookie secret to sign logins: set "
            "PANEL_COOKIE_SECRET (e.g. from `panel secret`) or give --cookie-secret"
        )
    provider = _option(argv, "--oauth-provider", "PANEL_OAUTH_PROVIDER")
    if mode == "basic":
        from panel.auth import AUTH_PROVIDERS

        from app.login import PROVIDER, LatentSkyLoginHandler

        other = _option(argv, "--basic-auth", "PANEL_BASIC_AUTH")
        if other or (provider and provider.lower() != PROVIDER):
            raise ServeError(
                "LATENTSKY_AUTH=basic checks passwords against the users table (python -m "
                "backend users add); drop --basic-auth/PANEL_BASIC_AUTH and --oauth-provider, "
                "or use LATENTSKY_AUTH=oauth for an OAuth provider"
            )
        AUTH_PROVIDERS[PROVIDER] = LatentSkyLoginHandler
        os.environ["PANEL_OAUTH_PROVIDER"] = PROVIDER  # read by Panel after its plugins
        return mode
    if not provider:
        raise ServeError(
            "LATENTSKY_AUTH=oauth needs PANEL_OAUTH_PROVIDER (github, google, generic, ...), "
            "PANEL_OAUTH_KEY and PANEL_OAUTH_SECRET (or panel serve's --oauth-* options)"
        )
    for name, env in (("--oauth-key", "PANEL_OAUTH_KEY"), ("--oauth-secret", "PANEL_OAUTH_SECRET")):
        if not _option(argv, name, env):
            raise ServeError(f"LATENTSKY_AUTH=oauth with {provider} needs {env} (or {name})")
    if not _option(argv, "--oauth-encryption-key", "PANEL_OAUTH_ENCRYPTION"):
        raise ServeError(
            "LATENTSKY_AUTH=oauth needs PANEL_OAUTH_ENCRYPTION (e.g. from `panel oauth-secret`) "
            "or --oauth-encryption-key: without it the provider's tokens are kept in the "
            "browser's cookies in clear"
        )
    _check_provider(argv, provider)
    return mode


def _check_provider(argv: list[str], provider: str) -> None:
    """Panel knows ``provider``, and a generic one has its endpoints: else Panel would start and
    answer every login with a 500."""
    from panel.auth import AUTH_PROVIDERS

    if provider.lower() not in AUTH_PROVIDERS:
        known = ", ".join(sorted(AUTH_PROVIDERS))
        raise ServeError(
            f"PANEL_OAUTH_PROVIDER={provider!r} is not one of Panel's OAuth providers ({known})"
        )
    if provider.lower() != "generic":
        return
    text = _option(argv, "--oauth-extra-params", "PANEL_OAUTH_EXTRA_PARAMS") or "{}"
    try:
        extra = ast.literal_eval(text)
        if not isinstance(extra, dict):
            raise ValueError("not a dict")
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise ServeError(
            f"PANEL_OAUTH_EXTRA_PARAMS/--oauth-extra-params {text!r} is not a Python dict literal"
        ) from None
    for key, env in (
        ("AUTHORIZE_URL", "PANEL_OAUTH_AUTHORIZE_URL"),
        ("TOKEN_URL", "PANEL_OAUTH_TOKEN_URL"),
    ):
        if not extra.get(key) and not os.environ.get(env):
            raise ServeError(
                f"LATENTSKY_AUTH=oauth with the generic provider needs {env} (or {key!r} in "
                "PANEL_OAUTH_EXTRA_PARAMS): the provider's endpoint from its "
                "/.well-known/openid-configuration"
            )
