"""Import layering of backend/: the jobs call the pipeline, the pipeline never imports jobs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("package", ["active", "pipeline"])
def test_the_pipeline_and_active_learning_never_import_backend_jobs(package: str) -> None:
    files = sorted((REPO / "backend" / package).rglob("*.py"))
    assert files
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in files
        for name in _imported_modules(path)
        if name == "backend.jobs" or name.startswith("backend.jobs.")
    }
    assert not offenders, f"backend/{package} imports backend/jobs: {sorted(offenders)}"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_time_imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Modules of ``modules`` that importing ``name`` (at ``path``) imports at once: imports
    at module level (also inside ``if``/``try``; not under ``TYPE_CHECKING``, not inside
    functions). ``from pkg import sub`` counts as importing ``pkg.sub``; a module's own parent
    packages, which Python imports first anyway, are not counted unless named."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, *(h.body for h in node.handlers), node.orelse):
                    visit(block)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    named.add(sub if sub in modules else module)

    visit(ast.parse(path.read_text(), str(path)).body)
    found: set[str] = set()
    for target in named:
        explicit = True
        while target:
            if target in modules and target != name:
                if explicit or not name.startswith(f"{target}."):
                    found.add(target)
                explicit = False
            target = target.rpartition(".")[0]
    return found


def _import_cycles(root: Path, packages: tuple[str, ...]) -> list[list[str]]:
    """Groups of modules under ``root/<package>`` that import each other at load time."""
    paths = {
        _module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }
    graph = {name: _load_time_imports(path, name, set(paths)) for name, path in paths.items()}
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in sorted(graph):  # every module: the modules reachable both ways form a cycle
        if start in done:
            continue
        reach = _reachable(graph, start)
        group = sorted(n for n in reach if start in _reachable(graph, n))
        done.update(group)
        if len(group) > 1:
            cycles.append(group)
    return cycles


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_module_of_backend_app_or_models_imports_itself_back(tmp_path: Path) -> None:
    """No import circles: no chain of load-time imports leads from a module back to itself
    (an import inside a function, made on first use, is how a step reaches a layer above)."""
    assert _import_cycles(REPO, ("backend", "app", "models")) == []
    # the check sees a circle through a package's __init__ and one between two modules
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg.a import A\n")
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\nA = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("import os\n\ndef f():\n    from pkg import a\n")
    (tmp_path / "pkg" / "c.py").write_text("from pkg import A\n")
    (tmp_path / "pkg" / "d.py").write_text("from . import e\n")
    (tmp_path / "pkg" / "e.py").write_text(
        "try:\n    import pkg.d\nexcept ImportError:\n    pass\n"
    )
    assert _import_cycles(tmp_path, ("pkg",)) == [["pkg.d", "pkg.e"]]
    (tmp_path / "pkg" / "a.py").write_text("from pkg import c\nA = 1\n")
    assert _import_cycles(tmp_path, ("pkg",)) == [["pkg", "pkg.a", "pkg.c"], ["pkg.d", "pkg.e"]]


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
