"""Per-process cache of open surveys (reopened when a survey folder is replaced)."""

from __future__ import annotations

import threading

from backend.survey import Survey, survey_path

_lock = threading.Lock()
_open: dict[str, tuple[int, Survey]] = {}


def get_survey(name: str) -> Survey:
    """The open :class:`Survey` ``name``, shared by all sessions of this process (keyed by its
    folder: another data root is another survey)."""
    path = survey_path(name)
    try:
        stamp = (path / "survey.json").stat().st_mtime_ns
    except FileNotFoundError:
        return Survey.open(name)  # raises a clear "unknown survey" error
    with _lock:
        cached = _open.get(str(path))
        if cached is None or cached[0] != stamp:
            cached = (stamp, Survey.open(name))
            _open[str(path)] = cached
        return cached[1]
