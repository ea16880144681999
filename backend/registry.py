"""The model registry: immutable, versioned model folders and each survey's active versions.

Layout under ``$LATENTSKY_HOME/models``::

    <kind>/<version>/weights.pt     torch state dict
    <kind>/<version>/model.json     model config (architecture, bands, normalisation, ...)
    <kind>/<version>/meta.json      metrics, training data, parent, code version, time
    <kind>/<version>/job.json       only for versions a background job saved: {job, state}
    active/<survey>.json            {kind: version} currently shown for that survey

A version folder is built under a hidden temporary name and renamed into place, so a killed save
leaves the previous versions untouched. Torch is imported only when weights are read or written,
so the web app can list versions without it.

A version saved inside a job (:func:`job_scope`) carries ``job.json`` from its first moment, in
state ``running``: :meth:`ModelRegistry.list` (``models``, the app) hides it until its job
succeeds or activates it; when the job fails, is cancelled or its worker is lost it becomes
``failed``/``cancelled`` and stays hidden (kept on disk, so its number is never reused, and it
cannot be activated). Inside a job, :meth:`ModelRegistry.set_active_many` calls the job's
``before_activation`` check under the pointer lock, just before the switch: a cancelled or lost
job raises there and nothing is activated.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from backend import __version__
from backend.atomic import atomic_write_json
from backend.config import get_settings
from backend.errors import UserError
from backend.survey.meta import validate_survey_name

MODEL_KINDS = ("encoder", "autoencoder", "classifier", "emulator")
JOB_FILE = "job.json"  # {job, state} of a version a background job saved
HIDDEN_STATES = ("running", "failed", "cancelled")  # job states whose versions are not listed


class RegistryError(UserError, ValueError):
    """A model version is missing, malformed, or of the wrong kind."""


@dataclass(frozen=True)
class ModelVersion:
    """One saved model version (read-only view of its folder)."""

    kind: str
    version: str
    path: Path
    meta: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return json.loads((self.path / "model.json").read_text())

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})

    @property
    def gate(self) -> dict[str, Any] | None:
        """The activation gate's decision on this version (``gate.json``), if one was made."""
        path = self.path / "gate.json"
        return json.loads(path.read_text()) if path.is_file() else None

    @property
    def weights_path(self) -> Path:
        return self.path / "weights.pt"

    def load_state(self, map_location: str = "cpu") -> dict[str, Any]:
        import torch

        return torch.load(self.weights_path, map_location=map_location, weights_only=True)


@dataclass(frozen=True)
class JobScope:
    """The background job saving versions in this context, and its last check before a switch
    (raises when the job may no longer activate anything)."""

    job_id: int
    before_activation: Callable[[], None] | None = None


_job_scope: ContextVar[JobScope | None] = ContextVar("latentsky_job_scope", default=None)


@contextmanager
def job_scope(job_id: int, before_activation: Callable[[], None] | None = None) -> Iterator[None]:
    """Versions saved in this block belong to job ``job_id`` (hidden until it settles); every
    activation in it first calls ``before_activation``."""
    token = _job_scope.set(JobScope(int(job_id), before_activation))
    try:
        yield
    finally:
        _job_scope.reset(token)


def _job_marker(path: Path) -> dict[str, Any] | None:
    marker = path / JOB_FILE
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {"job": None, "state": "failed"}  # unreadable: hide rather than show


def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    return f"{__version__}+{_git_commit()}" if _git_commit() else __version__


@cache
def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


class ModelRegistry:
    """Save, list and load model versions; get and switch each survey's active versions."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else get_settings().models_dir

    # -- saving ------------------------------------------------------------------------------
    def save(
        self,
        kind: str,
        state_dict: dict[str, Any],
        config: dict[str, Any],
        *,
        survey: str,
        metrics: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        parent: str | None = None,
        extra_files: dict[str, Path] | None = None,
    ) -> ModelVersion:
        """Write a new version atomically and return it (it is not made active)."""
        import torch

        _check_kind(kind)
        kind_dir = self.root / kind
        kind_dir.mkdir(parents=True, exist_ok=True)
        tmp = kind_dir / f".incoming-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            torch.save(state_dict, tmp / "weights.pt")
            (tmp / "model.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
            for name, src in (extra_files or {}).items():
                shutil.copyfile(src, tmp / name)
            scope = _job_scope.get()
            if scope is not None:  # hidden from the first moment it has a name
                atomic_write_json(tmp / JOB_FILE, {"job": scope.job_id, "state": "running"})
            meta = {
                "kind": kind,
                "survey": survey,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "parent": parent,
                "code_version": code_version(),
                "metrics": metrics or {},
                "training": training or {},
            }
            if scope is not None:
                meta["job"] = scope.job_id
            return self._claim_version(kind, tmp, meta)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _claim_version(self, kind: str, tmp: Path, meta: dict[str, Any]) -> ModelVersion:
        """Rename ``tmp`` to the next free ``v0001``-style name (safe against racing saves)."""
        for _ in range(1000):
            version = f"v{self._next_number(kind):04d}"
            meta["version"] = version
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
            try:
                os.rename(tmp, self.root / kind / version)
            except OSError:
                continue  # another save took this number; try the next one
            return self.get(kind, version)
        raise RegistryError(f"could not allocate a version number for {kind}")

    def _next_number(self, kind: str) -> int:
        numbers = [int(p.name[1:]) for p in self._version_dirs(kind)]
        return max(numbers, default=0) + 1

    def _version_dirs(self, kind: str) -> list[Path]:
        kind_dir = self.root / kind
        if not kind_dir.is_dir():
            return []
        return sorted(
            (p for p in kind_dir.iterdir() if p.name[:1] == "v" and p.name[1:].isdigit()),
            key=lambda p: int(p.name[1:]),
        )

    # -- reading -----------------------------------------------------------------------------
    def get(self, kind: str, version: str) -> ModelVersion:
        _check_kind(kind)
        path = self.root / kind / str(version)
        if not version or not str(version).startswith("v") or not (path / "meta.json").is_file():
            known = ", ".join(v.version for v in self.list(kind)) or "none"
            raise RegistryError(f"no {kind} version {version!r} (known: {known})")
        return ModelVersion(kind, str(version), path, json.loads((path / "meta.json").read_text()))

    def list(
        self, kind: str | None = None, survey: str | None = None, *, hidden: bool = False
    ) -> list[ModelVersion]:
        """Versions (oldest first), optionally only one kind and/or trained on one survey;
        without ``hidden``, not those of a job still running or that failed or was cancelled."""
        kinds = [kind] if kind else list(MODEL_KINDS)
        versions = []
        for k in kinds:
            _check_kind(k)
            for path in self._version_dirs(k):
                marker = None if hidden else _job_marker(path)
                if marker is not None and marker.get("state") in HIDDEN_STATES:
                    continue
                if (path / "meta.json").is_file():
                    mv = ModelVersion(
                        k, path.name, path, json.loads((path / "meta.json").read_text())
                    )
                    if survey is None or mv.meta.get("survey") == survey:
                        versions.append(mv)
        return versions

    def latest(self, kind: str, survey: str | None = None) -> ModelVersion | None:
        versions = self.list(kind, survey)
        return versions[-1] if versions else None

    def record_gate(self, kind: str, version: str, decision: dict[str, Any]) -> None:
        """Store the activation gate's decision beside a version (atomic; weights untouched)."""
        atomic_write_json(self.get(kind, version).path / "gate.json", decision)

    # -- versions of background jobs ---------------------------------------------------------
    def job_versions(self, job_id: int) -> dict[str, str]:
        """{kind: version} saved by job ``job_id`` (the last one of each kind)."""
        found: dict[str, str] = {}
        for kind in MODEL_KINDS:
            for path in self._version_dirs(kind):
                marker = _job_marker(path)
                if marker is not None and marker.get("job") == int(job_id):
                    found[kind] = path.name
        return found

    def settle_job(self, job_id: int, status: str) -> dict[str, str]:
        """Record how job ``job_id`` ended on the versions it saved: ``succeeded`` shows them;
        ``failed``/``cancelled`` hide them for good (unless one became active: then it shows,
        as ``activated``). Returns {kind: version} of those it touched."""
        touched: dict[str, str] = {}
        for kind in MODEL_KINDS:
            for path in self._version_dirs(kind):
                marker = _job_marker(path)
                if marker is None or marker.get("job") != int(job_id):
                    continue
                state = status
                if marker.get("state") == "activated" or (
                    status != "succeeded" and self._is_active_anywhere(kind, path.name)
                ):
                    state = "activated"
                if marker.get("state") != state:
                    atomic_write_json(path / JOB_FILE, {**marker, "state": state})
                touched[kind] = path.name
        return touched

    def _is_active_anywhere(self, kind: str, version: str) -> bool:
        folder = self.root / "active"
        if not folder.is_dir():
            return False
        for pointer in folder.glob("*.json"):
            try:
                if json.loads(pointer.read_text()).get(kind) == version:
                    return True
            except (OSError, ValueError):
                continue
        return False

    # -- active pointers ---------------------------------------------------------------------
    def _active_file(self, survey: str) -> Path:
        return self.root / "active" / f"{validate_survey_name(survey)}.json"

    def active_versions(self, survey: str) -> dict[str, str]:
        path = self._active_file(survey)
        return json.loads(path.read_text()) if path.is_file() else {}

    def active(self, survey: str, kind: str) -> ModelVersion | None:
        version = self.active_versions(survey).get(kind)
        return self.get(kind, version) if version else None

    def set_active(self, survey: str, kind: str, version: str) -> None:
        """Point ``survey``'s ``kind`` at ``version`` (atomic replace of the pointer file)."""
        self.set_active_many(survey, {kind: version})

    def set_active_many(self, survey: str, versions: dict[str, str]) -> None:
        """Switch several kinds at once (one atomic write): e.g. a fine-tuned encoder and the
        classifier trained on its embeddings, so users never see one without the other."""
        markers = {}
        for kind, version in versions.items():
            mv = self.get(kind, version)  # must exist
            markers[kind] = _job_marker(mv.path)
            if markers[kind] is not None and markers[kind].get("state") in ("failed", "cancelled"):
                raise RegistryError(
                    f"{kind} {version} was made by job {markers[kind].get('job')}, which "
                    f"{'was ' if markers[kind]['state'] == 'cancelled' else ''}"
                    f"{markers[kind]['state']}: it cannot be activated"
                )
        scope = _job_scope.get()
        path = self._active_file(survey)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # serialise read-modify-write between processes
            if scope is not None and scope.before_activation is not None:
                scope.before_activation()  # the job's last word: raises when cancelled or lost
            pointers = self.active_versions(survey)
            pointers.update(versions)
            atomic_write_json(path, pointers)
        for kind, version in versions.items():  # shown from now on, whatever follows
            marker = markers[kind]
            if marker is not None and marker.get("state") != "activated":
                atomic_write_json(self.get(kind, version).path / JOB_FILE,
                                  {**marker, "state": "activated"})  # fmt: skip


def _check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise RegistryError(f"unknown model kind {kind!r} (kinds: {', '.join(MODEL_KINDS)})")
