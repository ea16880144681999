"""An OpenID Connect provider on 127.0.0.1 for tests: ``oidc-provider-mock`` (an authlib server
with the authorization-code flow, a token endpoint issuing signed id tokens, userinfo, discovery
and dynamic client registration) served on a thread of the test process.

Its authorize page is a form: POST ``sub=<login>`` to approve (the account's ``email`` claim is
the login), ``action=deny`` to refuse; either way the provider redirects back to the client's
registered redirect URI with ``code`` or ``error``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

INSECURE_TRANSPORT_ENV = "AUTHLIB_INSECURE_TRANSPORT"  # plain http on 127.0.0.1


@dataclass(frozen=True)
class Provider:
    """A running provider: its base ``url`` and endpoints."""

    url: str

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/oauth2/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    @property
    def userinfo_url(self) -> str:
        return f"{self.url}/userinfo"

    def register_client(self, redirect_uri: str) -> tuple[str, str]:
        """Register a web client (RFC 7591) that may only come back to ``redirect_uri`` and
        authenticates at the token endpoint with its secret in the body; (id, secret)."""
        r = requests.post(
            f"{self.url}/oauth2/clients",
            json={
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "client_secret_post",
            },
            timeout=30,
        )
        r.raise_for_status()
        answer = r.json()
        return answer["client_id"], answer["client_secret"]


@contextmanager
def running_provider() -> Iterator[Provider]:
    """Serve a fresh provider (registered clients only) on a free 127.0.0.1 port."""
    import werkzeug.serving
    from oidc_provider_mock import app

    previous = os.environ.get(INSECURE_TRANSPORT_ENV)
    os.environ[INSECURE_TRANSPORT_ENV] = "1"  # read by authlib on each request
    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, app(require_client_registration=True), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield Provider(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        if previous is None:
            os.environ.pop(INSECURE_TRANSPORT_ENV, None)
        else:
            os.environ[INSECURE_TRANSPORT_ENV] = previous
