"""Send a table to TOPCAT / Aladin over SAMP (astropy.samp), with a short timeout.

SAMP hubs are local: the hub (TOPCAT and Aladin start one) must run on the machine that runs
this server, which is the case when an astronomer runs LatentSky on their own computer.
"""

from __future__ import annotations

import atexit
import contextlib
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pandas as pd

from backend.latent.export import export_table

TIMEOUT_S = 3.0
MTYPE = "table.load.votable"
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="samp")
_lock = threading.Lock()


class SampUnavailable(RuntimeError):
    """No hub, no receiving application, or no answer in time (the message says which)."""


def send_table(df: pd.DataFrame, name: str, timeout: float = TIMEOUT_S) -> str:
    """Broadcast ``df`` as a VOTable to every SAMP client that loads tables; returns a summary."""
    with _lock:
        out = Path(tempfile.gettempdir()) / "latentsky-samp"  # not at import: it probes the disk
        out.mkdir(parents=True, exist_ok=True)
        path = export_table(df, out / f"{name}-{uuid.uuid4().hex[:8]}.vot", "votable")
    future = _POOL.submit(_broadcast, path, name)
    try:
        receivers = future.result(timeout=timeout)
    except FutureTimeout:
        raise SampUnavailable(
            f"the SAMP hub did not answer within {timeout:g} s; is TOPCAT/Aladin busy?"
        ) from None
    if not receivers:
        raise SampUnavailable(
            "a SAMP hub is running but no application that loads tables (TOPCAT, Aladin) is "
            "connected to it"
        )
    return f"sent {len(df):,} rows to {', '.join(receivers)}"


def _samp() -> tuple[type, type]:
    """(SAMPIntegratedClient, SAMPHubError) from pyvo.samp (astropy.samp is deprecated)."""
    from pyvo.samp import SAMPHubError, SAMPIntegratedClient

    return SAMPIntegratedClient, SAMPHubError


_client: object | None = None


def _connected() -> object:
    """The process's SAMP client, connected to the running hub (reconnects when the hub
    changed or went away). It stays connected: a client that leaves right after a notify
    can lose the message."""
    global _client
    client_type, hub_error = _samp()
    if _client is not None:
        try:
            _client.ping()
            return _client
        except Exception:  # the hub went away: forget it
            _client = None
    client = client_type(name="LatentSky", description="LatentSky selections", callable=False)
    try:
        client.connect()
    except (hub_error, OSError, ConnectionError) as exc:
        raise SampUnavailable(
            "no SAMP hub is running on the server machine: start TOPCAT or Aladin there (each "
            f"runs a hub), then send again ({type(exc).__name__})"
        ) from None
    _client = client
    atexit.register(_disconnect, client)
    return client


def _disconnect(client: object) -> None:
    with contextlib.suppress(Exception):  # the hub may be gone already
        client.disconnect()


def _broadcast(path: Path, name: str) -> list[str]:
    client = _connected()
    targets = list(client.get_subscribed_clients(MTYPE))
    names = [str(client.get_metadata(t).get("samp.name", t)) for t in targets]
    if targets:
        client.notify_all(
            {"samp.mtype": MTYPE, "samp.params": {"url": path.as_uri(), "name": name}}
        )
    return names
