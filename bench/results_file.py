"""One benchmark's JSON results file: figures merged by key, with the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def merge_results(path: Path, key: str, figures: dict[str, Any]) -> None:
    """Set ``key`` in the JSON object at ``path`` (created if missing) and record the machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[key] = figures
    results["machine"] = {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    path.write_text(json.dumps(results, indent=2) + "\n")
