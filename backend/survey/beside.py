"""Arrays stored beside a survey's catalog (id look-up, sky counts), read only while current."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_current_beside(catalog: Path, name: str) -> np.ndarray | None:
    """``name`` beside ``catalog``, memory-mapped; None when absent, unreadable or older than
    the catalog (which was rewritten since)."""
    path = Path(catalog).with_name(name)
    try:
        if path.stat().st_mtime_ns < Path(catalog).stat().st_mtime_ns:
            return None
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
