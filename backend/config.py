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
``LATENTSKY_LOGIN_LOCKOUT``  failed logins of one account, ``N/S`` (default ``5/900``: 5 within
                     900 s lock it until they age out; ``0``: no limit; ``backend.auth.lockout``).
``LATENTSKY_LOGIN_CLIENT_LOCKOUT``  the same per client address (default ``20/900``).
``LATENTSKY_RETRAIN_EVERY``  new labels between automatic classifier retrains (default 50).
``LATENTSKY_JOB_THREADS``  torch threads of a retrain's prediction (default: all cores but one).
``LATENTSKY_JOB_LEASE_S``  lease of a running job without renewal (seconds, default 20).
``LATENTSKY_JOB_HEARTBEAT_S``  how often a worker renews its leases (seconds, default 5; at
                     most a third of the lease).
``LATENTSKY_HUEY_IMMEDIATE``  ``1``: run submitted jobs in the submitting process (tests).
``REDIS_URL``        huey queue on Redis instead of the SQLite file ``huey.db`` in the data root.
``LATENTSKY_SCHEDULER``  where heavy steps run when no ``--scheduler`` is given: ``sync``,
                     ``local[:N]`` (default: a local Dask cluster sized to the machine) or
                     ``tcp://HOST:PORT`` (a running Dask scheduler); see
                     :mod:`backend.pipeline.execution`.
``LATENTSKY_DASK_GPU``  ``1``: the Dask workers have GPUs (started with ``--resources GPU=1``);
                     model tasks then request the ``GPU`` resource.
``LATENTSKY_COMPRESSED_INDEX_ABOVE``  surveys of more objects than this (default 5,000,000) get
                     a compressed similarity index (IVF-PQ, lists on disk, exact re-ranking;
                     :mod:`backend.latent.compressed`).
``LATENTSKY_FLOAT16_EMBEDDINGS_ABOVE``  surveys of more objects than this (default 50,000,000)
                     get their imported embeddings stored as float16 (``import embeddings
                     --dtype auto``): 10^8 x 128 is 25.6 GB instead of 51 GB.

Settings are read on every call of :func:`get_settings` (and of the accessors below, each one
variable), never cached, so tests and tools can point a process at another data root or setting
by changing the environment. This module is the only place that reads these variables;
``models/`` (which never imports ``backend/``) reads ``LATENTSKY_DEVICE`` itself when it is given
no device.
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


RETRAIN_EVERY_ENV, DEFAULT_RETRAIN_EVERY = "LATENTSKY_RETRAIN_EVERY", 50
JOB_THREADS_ENV = "LATENTSKY_JOB_THREADS"
JOB_LEASE_ENV, DEFAULT_LEASE_S = "LATENTSKY_JOB_LEASE_S", 20.0
JOB_HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S = "LATENTSKY_JOB_HEARTBEAT_S", 5.0
HUEY_IMMEDIATE_ENV = "LATENTSKY_HUEY_IMMEDIATE"
REDIS_URL_ENV = "REDIS_URL"
ALLOW_UNAUTHENTICATED_ENV = "LATENTSKY_ALLOW_UNAUTHENTICATED"
THUMB_CACHE_ENV, DEFAULT_THUMB_CACHE_MB = "LATENTSKY_THUMB_CACHE_MB", 256
API_RATE_ENV, DEFAULT_API_RATE = "LATENTSKY_API_RATE", "1200/60"
LOGIN_LOCKOUT_ENV, DEFAULT_LOGIN_LOCKOUT = "LATENTSKY_LOGIN_LOCKOUT", "5/900"
LOGIN_CLIENT_LOCKOUT_ENV = "LATENTSKY_LOGIN_CLIENT_LOCKOUT"
DEFAULT_LOGIN_CLIENT_LOCKOUT = "20/900"
SCHEDULER_ENV = "LATENTSKY_SCHEDULER"
DASK_GPU_ENV = "LATENTSKY_DASK_GPU"
COMPRESSED_INDEX_ENV, DEFAULT_COMPRESSED_INDEX_ABOVE = "LATENTSKY_COMPRESSED_INDEX_ABOVE", 5_000_000
FLOAT16_ENV, DEFAULT_FLOAT16_ABOVE = "LATENTSKY_FLOAT16_EMBEDDINGS_ABOVE", 50_000_000


def retrain_every() -> int:
    """New labels between automatic retrains (``LATENTSKY_RETRAIN_EVERY``, default 50, >= 1)."""
    return max(1, int(os.environ.get(RETRAIN_EVERY_ENV, DEFAULT_RETRAIN_EVERY)))


def job_threads() -> int | None:
    """``LATENTSKY_JOB_THREADS`` (>= 1), or None when unset (the caller's default)."""
    value = os.environ.get(JOB_THREADS_ENV, "").strip()
    return max(1, int(value)) if value else None


def job_lease_seconds() -> float:
    """How long a running job's lease lasts without renewal (``LATENTSKY_JOB_LEASE_S``)."""
    return max(0.1, float(os.environ.get(JOB_LEASE_ENV) or DEFAULT_LEASE_S))


def job_heartbeat_seconds() -> float:
    """How often a worker renews its leases and finishes expired ones
    (``LATENTSKY_JOB_HEARTBEAT_S``; at most a third of the lease)."""
    value = float(os.environ.get(JOB_HEARTBEAT_ENV) or DEFAULT_HEARTBEAT_S)
    return max(0.05, min(value, job_lease_seconds() / 3))


def huey_immediate() -> bool:
    """``LATENTSKY_HUEY_IMMEDIATE=1``: submitted jobs run in the submitting process."""
    return os.environ.get(HUEY_IMMEDIATE_ENV) == "1"


def redis_url() -> str | None:
    """``REDIS_URL``: the huey queue on Redis (None: SQLite file in the data root)."""
    return os.environ.get(REDIS_URL_ENV) or None


def allow_unauthenticated() -> bool:
    """``LATENTSKY_ALLOW_UNAUTHENTICATED=1|true|yes``: serve without authentication anywhere."""
    return os.environ.get(ALLOW_UNAUTHENTICATED_ENV, "").strip().lower() in ("1", "true", "yes")


def thumb_cache_bytes() -> int:
    """The PNG cache's bound in bytes: ``LATENTSKY_THUMB_CACHE_MB`` MiB (default 256; 0: none)."""
    text = os.environ.get(THUMB_CACHE_ENV, "").strip() or str(DEFAULT_THUMB_CACHE_MB)
    try:
        mib = float(text)
        if not 0 <= mib < 1e9:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{THUMB_CACHE_ENV}={text!r}: give the cache size in MiB, e.g. "
            f"{DEFAULT_THUMB_CACHE_MB} (0 turns the cache off)"
        ) from None
    return int(mib * 2**20)


def api_rate() -> tuple[int, float]:
    """(requests, seconds) each user may make, from ``LATENTSKY_API_RATE`` ("N/S" or "N" per
    60 s; default 1200 per minute); ``(0, ...)`` means no limit."""
    text = os.environ.get(API_RATE_ENV, "").strip() or DEFAULT_API_RATE
    count, _, seconds = text.partition("/")
    try:
        requests, window = int(count), float(seconds or 60)
        if requests < 0 or window <= 0:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{API_RATE_ENV}={text!r}: give N/S (N requests per S seconds per user, e.g. "
            f"{DEFAULT_API_RATE}) or 0 for no limit"
        ) from None
    return requests, window


def _failures_per_window(env: str, default: str) -> tuple[int, float]:
    text = os.environ.get(env, "").strip() or default
    count, _, seconds = text.partition("/")
    try:
        failures, window = int(count), float(seconds or 900)
        if failures < 0 or not 0 < window < 1e9:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{env}={text!r}: give N/S (lock after N failed logins within S seconds, e.g. "
            f"{default}) or 0 for no limit"
        ) from None
    return failures, window


def login_lockout() -> tuple[int, float]:
    """(failures, seconds): that many failed logins of one account within that many seconds
    refuse its logins until they age out (``LATENTSKY_LOGIN_LOCKOUT``, default 5/900; 0: off)."""
    return _failures_per_window(LOGIN_LOCKOUT_ENV, DEFAULT_LOGIN_LOCKOUT)


def login_client_lockout() -> tuple[int, float]:
    """The same per client address (``LATENTSKY_LOGIN_CLIENT_LOCKOUT``, default 20/900)."""
    return _failures_per_window(LOGIN_CLIENT_LOCKOUT_ENV, DEFAULT_LOGIN_CLIENT_LOCKOUT)


def scheduler_text() -> str | None:
    """``LATENTSKY_SCHEDULER`` as written (None when unset or blank); parsed by
    :func:`backend.pipeline.execution.parse_scheduler`."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def compressed_index_threshold() -> int:
    """``LATENTSKY_COMPRESSED_INDEX_ABOVE``: the object count above which ``index --kind auto``
    builds a compressed IVF-PQ index (default 5,000,000)."""
    return _object_count(COMPRESSED_INDEX_ENV, DEFAULT_COMPRESSED_INDEX_ABOVE)


def float16_embeddings_threshold() -> int:
    """``LATENTSKY_FLOAT16_EMBEDDINGS_ABOVE``: the object count above which imported
    embeddings are stored as float16 unless asked otherwise (default 50,000,000)."""
    return _object_count(FLOAT16_ENV, DEFAULT_FLOAT16_ABOVE)


def _object_count(env: str, default: int) -> int:
    text = os.environ.get(env, "").strip() or str(default)
    try:
        value = int(text.replace("_", ""))
        if value < 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{env}={text!r}: give a number of objects, e.g. {default}") from None
    return value


def dask_gpu_workers() -> bool:
    """``LATENTSKY_DASK_GPU=1|true|yes``: Dask workers advertise a ``GPU`` resource, and model
    tasks request it."""
    return os.environ.get(DASK_GPU_ENV, "").strip().lower() in ("1", "true", "yes")


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


TILED_MAP_ENV, DEFAULT_TILED_MAP_ABOVE = "LATENTSKY_TILED_MAP_ABOVE", 1_000_000


def tiled_map_threshold() -> int:
    """``LATENTSKY_TILED_MAP_ABOVE``: surveys of at least this many objects (default 1,000,000)
    draw and select on the map from its tiles (``backend.latent.tiles``) when these are made."""
    text = os.environ.get(TILED_MAP_ENV, "").strip() or str(DEFAULT_TILED_MAP_ABOVE)
    try:
        value = int(text.replace("_", ""))
        if value < 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{TILED_MAP_ENV}={text!r}: give a number of objects (>= 0)") from None
    return value
