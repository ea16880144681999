"""A throwaway PostgreSQL cluster for tests and benchmarks (Debian's ``postgresql`` package).

:func:`start_cluster` runs ``initdb`` into a fresh temporary folder and ``pg_ctl start`` with the
server listening on 127.0.0.1 on a free port (its unix socket in the same folder), trust
authentication for one superuser ``latentsky``. As root (CI runs as root, and ``initdb`` refuses
root) the binaries run as the ``postgres`` system user through ``runuser``. :meth:`PgCluster.stop`
stops the server and removes the folder. :func:`cluster_unavailable` says why no cluster can be
started here (no binaries, root without a ``postgres`` user), or None.

``LATENTSKY_TEST_PG_URL`` (an admin URL of an existing server whose user may create databases)
replaces the throwaway cluster in the test fixtures.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

SUPERUSER = "latentsky"
RUN_AS = "postgres"  # the system user the binaries run as when we are root


def pg_bindir() -> Path | None:
    """Folder of ``initdb``/``pg_ctl``: on PATH, else the newest ``/usr/lib/postgresql/*/bin``."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _run_as() -> str | None:
    """The user to run the server as: None for ourselves, ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    return RUN_AS


def cluster_unavailable() -> str | None:
    """Why no throwaway cluster can be started here, or None when one can."""
    if pg_bindir() is None:
        return (
            "PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's postgresql package "
            "or set LATENTSKY_TEST_PG_URL"
        )
    if _run_as() is not None:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing (initdb refuses root)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """A running server: ``url(dbname)`` gives a SQLAlchemy URL on 127.0.0.1."""

    root: Path | None  # None: an external server (LATENTSKY_TEST_PG_URL), not ours to stop
    admin_url: str
    bindir: Path | None = None
    user: str | None = None

    def url(self, database: str) -> str:
        return sa.engine.make_url(self.admin_url).set(database=database).render_as_string(False)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = sa.engine.make_url(url).database
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            engine.dispose()

    def stop(self) -> None:
        if self.root is None or self.bindir is None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _pg(self, "pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _pg(cluster: PgCluster, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert cluster.bindir is not None
    cmd = [str(cluster.bindir / tool), *args]
    if cluster.user is not None:
        cmd = ["runuser", "-u", cluster.user, "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


def start_cluster(
    *, durable: bool = False, max_connections: int = 300, settings: dict[str, str] | None = None
) -> PgCluster:
    """initdb + start a private server on 127.0.0.1 (``durable``: keep fsync on, for benchmarks;
    tests turn it off). Raises RuntimeError (with the server's log) when it cannot start."""
    why = cluster_unavailable()
    if why is not None:
        raise RuntimeError(why)
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="latentsky-pg-"))
    user = _run_as()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    os.chmod(root, 0o700)
    cluster = PgCluster(root=root, admin_url="", bindir=bindir, user=user)
    port = _free_port()
    options = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(root),
        "max_connections": str(max_connections),
        **({} if durable else {"fsync": "off", "synchronous_commit": "off",
                               "full_page_writes": "off"}),
        **(settings or {}),
    }  # fmt: skip
    try:
        _pg(
            cluster, "initdb", "-D", str(root / "data"), "-U", SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--locale=C", *([] if durable else ["--no-sync"]),
        )  # fmt: skip
        with open(root / "data" / "postgresql.conf", "a") as conf:
            conf.writelines(f"{k} = '{v}'\n" for k, v in options.items())
        _pg(cluster, "pg_ctl", "-D", str(root / "data"), "-l", str(root / "server.log"), "-w",
            "-t", "60", "start")  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        detail = getattr(exc, "stderr", "") or ""
        cluster.stop()
        raise RuntimeError(f"could not start PostgreSQL: {exc}\n{detail}\n{log}") from exc
    cluster.admin_url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"
    return cluster


def external_cluster(url: str) -> PgCluster:
    """An existing server (``LATENTSKY_TEST_PG_URL``); databases are made and dropped in it."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return PgCluster(root=None, admin_url=parsed.render_as_string(hide_password=False))
