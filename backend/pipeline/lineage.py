"""Lineage records: what a product was made from, written beside it.

``<product>.lineage.json`` in the product's folder holds the product, the survey, the model
version it belongs to, its inputs (the survey's identity, model versions, the content hashes
of the products it read), its parameters, the code version, when it was made and how long it
took, and the sha256 of each of its files with one content hash over them. The record is
written (atomically) after the product's files, so a product whose record is missing was not
made by the pipeline (or its build died before the end).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from backend.pipeline.kinds import Target

LINEAGE_SUFFIX = ".lineage.json"
FORMAT = 1


def lineage_path(target: Target) -> Path:
    return target.directory / f"{target.product}{LINEAGE_SUFFIX}"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def content_hashes(target: Target) -> tuple[dict[str, str], str]:
    """The sha256 of each file of ``target`` and one hash over them (names included)."""
    files = {name: file_sha256(target.directory / name) for name in target.files}
    combined = hashlib.sha256(
        "".join(f"{name}\0{digest}\n" for name, digest in sorted(files.items())).encode()
    ).hexdigest()
    return files, combined


def write_lineage(
    target: Target,
    inputs: dict[str, Any],
    params: dict[str, Any] | None,
    seconds: float | None,
    *,
    adopted: bool = False,
) -> dict[str, Any]:
    """Hash ``target``'s files and write its record; returns it. ``adopted``: the files were
    made outside the pipeline (before lineage records existed) and are recorded as found."""
    from backend.registry import code_version

    files, combined = content_hashes(target)
    record = {
        "format": FORMAT,
        "product": target.product,
        "survey": target.survey,
        "kind": target.kind,
        "version": target.version,
        "inputs": inputs,
        "params": params,
        "code_version": code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": None if seconds is None else round(seconds, 3),
        "files": files,
        "content_hash": combined,
        "adopted": adopted,
    }
    atomic_write_json(lineage_path(target), record)
    return record


def read_lineage(target: Target) -> dict[str, Any] | None:
    """The record of ``target``, or None when there is none (or it cannot be read)."""
    path = lineage_path(target)
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def verify(target: Target) -> bool:
    """True when ``target``'s files are those its record hashed."""
    record = read_lineage(target)
    if record is None or not target.exists():
        return False
    return content_hashes(target)[1] == record.get("content_hash")


def stamp(target: Target) -> str | None:
    """A short value that changes whenever ``target`` is remade: its content hash, else (no
    record) its files' modification times, else None (no product)."""
    record = read_lineage(target)
    if record is not None and target.exists():
        return str(record.get("content_hash"))
    times = []
    for path in target.paths:
        try:
            times.append(str(path.stat().st_mtime_ns))
        except FileNotFoundError:
            return None
    return "mtime:" + ",".join(times)


class Timer:
    """Wall-clock seconds of a build."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
