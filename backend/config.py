"""All configuration in one place, read from the environment.

``LATENTSKY_HOME``   data root (default ``./var``): surveys, models, products, database, logs.
``DATABASE_URL``     SQLAlchemy URL (default: SQLite file ``latentsky.db`` in the data root).
``LATENTSKY_DEVICE`` ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
``LATENTSKY_THUMB_CACHE_MB``  bound of the thumbnail PNG cache per process (MiB, default 256;
                     ``backend.survey.store``).
``LATENTSKY_API_RATE``  label API requests per user, ``N/S`` (default ``1200/60``, ``0``: no
                     limit; ``app.api``).
``LATENTSKY_AUTH``   ``none`` (default: one local user; the web server refuses to listen on
                     anything but localhost), ``basic`` (accounts in the database) or ``oauth``
                     (Panel's OAuth providers); see :mod:`backend.auth`.
``LATENTSKY_DEFAULT_ROLE``  role of an OAuth account with no row in ``users`` (default
                     ``viewer``).
``LATENTSKY_ALLOW_UNAUTHENTICATED``  ``1``: serve without authentication on any address.

Settings are read on every call of :func:`get_settings`, so tests and tools can point a process
at another data root by changing the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from backend.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
AUTH_CHOICES = ("none", "basic", "oauth")


class ConfigError(UserError, ValueError):
    """A configuration value from the environment is not usable."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one LatentSky process."""

    home: Path
    database_url: str
    device: str
    auth: str = "none"
    default_role: str = "viewer"

    @property
    def surveys_dir(self) -> Path:
        return self.home / "surveys"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def products_dir(self) -> Path:
        return self.home / "products"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; not cached)."""
    home = Path(os.environ.get("LATENTSKY_HOME", "var")).expanduser().resolve()
    device = os.environ.get("LATENTSKY_DEVICE", "auto").strip().lower() or "auto"
    if device not in DEVICE_CHOICES:
        raise ConfigError(f"LATENTSKY_DEVICE={device!r} is not one of {', '.join(DEVICE_CHOICES)}")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'latentsky.db'}"
    auth = os.environ.get("LATENTSKY_AUTH", "none").strip().lower() or "none"
    if auth not in AUTH_CHOICES:
        raise ConfigError(f"LATENTSKY_AUTH={auth!r} is not one of {', '.join(AUTH_CHOICES)}")
    from backend.auth.roles import RoleError, check_role

    try:
        default_role = check_role(os.environ.get("LATENTSKY_DEFAULT_ROLE", "").strip() or "viewer")
    except RoleError as exc:
        raise ConfigError(f"LATENTSKY_DEFAULT_ROLE: {exc}") from None
    return Settings(
        home=home, database_url=database_url, device=device, auth=auth, default_role=default_role
    )


#: Database driver modules SQLAlchemy imports, and the package that provides each.
DATABASE_DRIVERS = {
    "psycopg": "psycopg",  # PostgreSQL (postgresql:// and postgresql+psycopg://)
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
    "MySQLdb": "mysqlclient",
    "oracledb": "oracledb",
    "pyodbc": "pyodbc",
}


def missing_driver_message(exc: ImportError) -> str | None:
    """One line naming the database driver package ``DATABASE_URL`` needs when ``exc`` is its
    missing import (the URL is shown without user, password or host); None otherwise."""
    module = (exc.name or "").split(".")[0]
    if module not in DATABASE_DRIVERS:
        text = str(exc)
        module = next((m for m in DATABASE_DRIVERS if f"'{m}'" in text or f" {m};" in text), "")
        if not module:
            return None
    url = os.environ.get("DATABASE_URL", "")
    scheme = url.split("://", 1)[0] if "://" in url else "the database"
    return (
        f"DATABASE_URL ({scheme}://...) needs the database driver package "
        f"'{DATABASE_DRIVERS[module]}' (module {module}), which is not installed: "
        f"pip install {DATABASE_DRIVERS[module]}"
    )
