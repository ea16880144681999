"""Import layering of backend/: the jobs call the pipeline, the pipeline never imports jobs."""

from __future__ import annotations

import ast
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
