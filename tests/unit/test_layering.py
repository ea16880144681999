"""Import layering of backend/: the jobs call the pipeline, the pipeline never imports jobs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from ... import`` in ``path`` names (at any depth:
    imports inside functions count too), relative imports resolved."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_backend_active_never_imports_backend_jobs() -> None:
    files = sorted((REPO / "backend" / "active").glob("*.py"))
    assert files
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in files
        for name in _imported_modules(path)
        if name == "backend.jobs" or name.startswith("backend.jobs.")
    }
    assert not offenders, f"backend/active imports backend/jobs: {sorted(offenders)}"


def test_importing_backend_active_loads_no_job_module() -> None:
    code = (
        "import sys\n"
        "import backend.active, backend.active.loop, backend.active.gate\n"
        "print(sorted(m for m in sys.modules if m.startswith('backend.jobs')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_importing_the_job_queue_builds_no_huey(tmp_path: Path) -> None:
    """No work at import time: the huey (and its SQLite file, or Redis connection) is built on
    first use, for the settings of that moment."""
    home = tmp_path / "home"
    code = (
        "import os, sys\n"
        "import backend.jobs.queue as q, backend.jobs.api, backend.commands.worker\n"
        "assert q._huey is None and q._task is None, 'huey built at import'\n"
        "assert 'huey' not in sys.modules, 'huey imported at import'\n"
        f"assert not os.path.exists({str(home)!r}), 'data root made at import'\n"
        "huey = q.get_huey()\n"
        "assert q.get_huey() is huey and not huey.immediate\n"
        "print(sorted(huey._registry._registry))\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("LATENTSKY_HUEY_IMMEDIATE", "REDIS_URL")
    }
    env["LATENTSKY_HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['backend.jobs.queue.run_job_task']"
    assert (home / "huey.db").exists()


def _all_modules() -> list[str]:
    """Every module of backend/ and app/ but the scripts meant to run when loaded
    (``python -m backend``, ``panel serve app/main.py``, alembic's ``env.py``)."""
    scripts = {"backend/__main__.py", "app/main.py", "backend/migrations/env.py"}
    names = []
    for path in sorted([*(REPO / "backend").rglob("*.py"), *(REPO / "app").rglob("*.py")]):
        if path.relative_to(REPO).as_posix() in scripts:
            continue
        parts = path.relative_to(REPO).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_importing_any_module_does_no_work(tmp_path: Path) -> None:
    """No work at import time: importing every backend/ and app/ module in a fresh process
    creates no database engine, reads no setting, opens or makes nothing under the data root
    and starts no thread (see tests/unit/import_probe.py, which also checks that opening the
    database afterwards is seen by the same probes)."""
    import json

    home = tmp_path / "home"
    home.mkdir()
    modules = _all_modules()
    assert len(modules) > 100 and "backend.db" in modules and "app.shell" in modules
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(LATENTSKY_HOME=str(home), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-m", "tests.unit.import_probe", *modules],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}
    assert report["at_import"] == {"engines": [], "settings": [], "files": [], "threads": []}
    after = report["after"]  # the probes see work when there is some
    assert after["engines"] and after["settings"]
    assert any(str(home / "latentsky.db") in f for f in after["files"])


def test_importing_the_accounts_and_samp_modules_hashes_and_probes_nothing() -> None:
    """Work the probes above cannot see: no argon2id hash (0.2 s, 64 MiB) when the accounts
    module loads, no temporary-directory probe (a file written) when the SAMP module loads."""
    code = (
        "import argon2, tempfile\n"
        "def refuse(*a, **k): raise AssertionError('work at import time')\n"
        "argon2.PasswordHasher.hash = refuse\n"
        "tempfile.gettempdir = refuse\n"
        "import backend.auth.users, app.samp\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_importing_the_vector_helpers_leaves_faiss_threads_alone() -> None:
    """FAISS's OpenMP team is process-wide: importing the latent helpers must not resize it
    (the web server, a test or a Dask worker may have chosen it); the first index does."""
    code = (
        "import faiss\n"
        "faiss.omp_set_num_threads(1)\n"
        "import backend.latent.vectors, backend.latent.search\n"
        "assert faiss.omp_get_max_threads() == 1, faiss.omp_get_max_threads()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
