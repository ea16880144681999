"""Run as ``python -m tests.unit.import_probe MODULE...``: import the modules in this fresh
process and print (JSON) the work that importing them did: database engines created, settings
read, files under the data root (``LATENTSKY_HOME``) opened or made, threads started, modules
that failed to import. Then, to prove the probes see such work, open the database once and
print what that did too.

Used by ``tests/unit/test_layering.py``: importing a module must do no work.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import traceback
from typing import Any

#: Audit events that read, make or change a file (``open`` covers reads and writes).
FILE_EVENTS = {"open", "os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir",
               "shutil.rmtree", "sqlite3.connect", "os.truncate", "os.utime", "os.chmod"}  # fmt: skip


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OURS = (os.path.join(REPO, "backend") + os.sep, os.path.join(REPO, "app") + os.sep)


def _where() -> str:
    """The last frames in backend/ or app/ (the culprit), innermost last."""
    frames = [f for f in traceback.extract_stack()[:-2] if f.filename.startswith(OURS)]
    return " -> ".join(f"{os.path.relpath(f.filename, REPO)}:{f.lineno}" for f in frames[-3:])


def main(modules: list[str]) -> dict[str, Any]:
    home = os.path.realpath(os.environ["LATENTSKY_HOME"])
    seen: dict[str, list[Any]] = {"engines": [], "settings": [], "files": []}

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event in FILE_EVENTS and args and isinstance(args[0], str | bytes | os.PathLike):
            path = os.path.realpath(os.fsdecode(args[0]))
            if path == home or path.startswith(home + os.sep):
                seen["files"].append(f"{event} {path} at {_where()}")

    sys.addaudithook(audit)
    import sqlalchemy

    create_engine = sqlalchemy.create_engine

    def counting_create_engine(*args: Any, **kwargs: Any) -> Any:
        seen["engines"].append(f"{args[:1]!r} at {_where()}")
        return create_engine(*args, **kwargs)

    sqlalchemy.create_engine = sqlalchemy.engine.create_engine = counting_create_engine
    import backend.config as config

    def counting(name: str, fn: Any) -> Any:
        def read(*args: Any, **kwargs: Any) -> Any:
            seen["settings"].append(f"{name}() at {_where()}")
            return fn(*args, **kwargs)

        return read

    for name, fn in list(vars(config).items()):
        if callable(fn) and not isinstance(fn, type) and fn.__module__ == config.__name__:
            setattr(config, name, counting(name, fn))
    threads = set(threading.enumerate())
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported, not raised: one broken module must not hide others
            failed[name] = f"{type(exc).__name__}: {exc}"
    new_threads = [f"{t.name} ({t.__class__.__module__})" for t in threading.enumerate()
                   if t not in threads]  # fmt: skip
    at_import = {**{k: list(v) for k, v in seen.items()}, "threads": new_threads}
    for v in seen.values():
        v.clear()
    from backend.db import engine_for

    with engine_for().connect() as conn:  # the same probes must see real work
        conn.exec_driver_sql("SELECT 1")
    return {"failed": failed, "at_import": at_import, "after": seen}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
