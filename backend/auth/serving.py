"""Who is asking, and whether a server may listen without authentication.

:func:`account_for` turns the login a web request carries (Panel's cookie, via the Bokeh auth
provider) into an :class:`~backend.auth.roles.Account` under ``LATENTSKY_AUTH``:

- ``none``: everyone is the single local user with every right (as before accounts existed): the
  account has no name (requests name their user themselves) unless a login was given;
- ``basic``: the login must be a row of ``users``; its role is that row's (an account removed
  since its cookie was made is nobody);
- ``oauth``: the provider vouches for the login; its role is its row's, else
  ``LATENTSKY_DEFAULT_ROLE`` (default viewer).

:func:`serve_refusal` says why a server must not start: ``LATENTSKY_AUTH=none`` on an address
other than localhost (unless ``LATENTSKY_ALLOW_UNAUTHENTICATED=1``).
"""

from __future__ import annotations

import ipaddress

from backend.auth.roles import Account
from backend.config import (
    ALLOW_UNAUTHENTICATED_ENV,
    Settings,
    allow_unauthenticated,
    get_settings,
)

GUEST = "guest"  # Panel's name for visitors of guest endpoints: not a login
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def account_for(login: str | bytes | None, settings: Settings | None = None) -> Account | None:
    """The account of ``login`` (None or ``"guest"``: nobody logged in)."""
    settings = settings or get_settings()
    if isinstance(login, bytes):
        login = login.decode("utf-8", "replace")
    name = str(login) if login and login != GUEST else None
    if settings.auth == "none":
        return Account(name, "admin")
    if name is None:
        return None
    from backend.auth.users import UserStore

    role = UserStore().role_of(name)
    if role is None:
        if settings.auth == "basic":
            return None
        role = settings.default_role
    return Account(name, role)


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` (what ``--address`` gave; None or empty: every interface) is local."""
    if not address:
        return False
    host = address.strip().strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_refusal(address: str | None, unix_socket: bool = False) -> str | None:
    """Why a web server listening on ``address`` must not start, or None when it may."""
    settings = get_settings()
    if settings.auth != "none" or unix_socket or is_loopback(address):
        return None
    if allow_unauthenticated():
        return None
    where = address or "every interface (no --address)"
    return (
        f"refusing to serve on {where} without authentication: anyone who can reach it could "
        "label, undo and cancel jobs. Set LATENTSKY_AUTH=basic (accounts: python -m backend "
        "users add) or LATENTSKY_AUTH=oauth, serve on --address 127.0.0.1, or set "
        f"{ALLOW_UNAUTHENTICATED_ENV}=1 to serve unauthenticated anyway"
    )


def bind_address(argv: list[str]) -> tuple[str | None, bool]:
    """(``--address``, whether ``--unix-socket`` is given) of a ``panel serve`` command line."""
    address, unix = None, False
    for i, arg in enumerate(argv):
        if arg == "--address" and i + 1 < len(argv):
            address = argv[i + 1]
        elif arg.startswith("--address="):
            address = arg.split("=", 1)[1]
        elif arg == "--unix-socket" or arg.startswith("--unix-socket="):
            unix = True
    return address, unix
