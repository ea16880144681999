"""Atomic file writes: write beside the target, fsync, then ``os.replace``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _finished_temp(path: Path, write: Callable[[Path], None]) -> Iterator[Path]:
    """A temporary file beside ``path`` holding ``write``'s output, fsynced; removed on exit
    unless the caller moved it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        yield tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one step."""
    path = Path(path)
    with _finished_temp(path, write) as tmp_path:
        os.replace(tmp_path, path)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (the owner of a staging folder: folders
    of dead writers are swept, those of live ones are left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def atomic_create(path: Path, write: Callable[[Path], None]) -> bool:
    """Like :func:`atomic_write`, but only when ``path`` does not exist yet: the finished file is
    hard-linked into place, so a file someone else wrote meanwhile is never replaced. Returns
    whether this call created ``path``."""
    path = Path(path)
    with _finished_temp(path, write) as tmp_path:
        try:
            os.link(tmp_path, path)
        except FileExistsError:
            return False
        return True
