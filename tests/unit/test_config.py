"""Configuration comes from the environment, with safe defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import ConfigError, get_settings


def test_defaults_live_under_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("LATENTSKY_HOME", "DATABASE_URL", "LATENTSKY_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = get_settings()
    assert settings.home == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'latentsky.db'}"
    assert settings.device == "auto"
    assert settings.surveys_dir == tmp_path / "var" / "surveys"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LATENTSKY_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/latentsky")
    monkeypatch.setenv("LATENTSKY_DEVICE", "CPU")
    settings = get_settings()
    assert settings.home == tmp_path / "data"
    assert settings.database_url == "postgresql://u@db/latentsky"
    assert settings.device == "cpu"


def test_bad_device_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSKY_DEVICE", "tpu")
    with pytest.raises(ConfigError, match="LATENTSKY_DEVICE='tpu'"):
        get_settings()


def test_every_variable_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend import config

    for var in (
        "LATENTSKY_RETRAIN_EVERY", "LATENTSKY_JOB_THREADS", "LATENTSKY_JOB_LEASE_S",
        "LATENTSKY_JOB_HEARTBEAT_S", "LATENTSKY_HUEY_IMMEDIATE", "REDIS_URL",
        "LATENTSKY_ALLOW_UNAUTHENTICATED", "LATENTSKY_THUMB_CACHE_MB", "LATENTSKY_API_RATE",
    ):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    assert config.retrain_every() == 50 and config.job_threads() is None
    assert config.job_lease_seconds() == 20 and config.job_heartbeat_seconds() == 5
    assert not config.huey_immediate() and config.redis_url() is None
    assert not config.allow_unauthenticated()
    assert config.thumb_cache_bytes() == 256 * 2**20 and config.api_rate() == (1200, 60)
    monkeypatch.setenv("LATENTSKY_RETRAIN_EVERY", "7")
    monkeypatch.setenv("LATENTSKY_JOB_THREADS", "3")
    monkeypatch.setenv("LATENTSKY_JOB_LEASE_S", "3")
    monkeypatch.setenv("LATENTSKY_JOB_HEARTBEAT_S", "5")
    monkeypatch.setenv("LATENTSKY_HUEY_IMMEDIATE", "1")
    monkeypatch.setenv("REDIS_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("LATENTSKY_ALLOW_UNAUTHENTICATED", "yes")
    monkeypatch.setenv("LATENTSKY_THUMB_CACHE_MB", "0")
    monkeypatch.setenv("LATENTSKY_API_RATE", "10/2")
    assert config.retrain_every() == 7 and config.job_threads() == 3
    assert config.job_lease_seconds() == 3 and config.job_heartbeat_seconds() == 1  # lease / 3
    assert config.huey_immediate() and config.redis_url() == "redis://localhost:6379/0"
    assert config.allow_unauthenticated()
    assert config.thumb_cache_bytes() == 0 and config.api_rate() == (10, 2)
    monkeypatch.setenv("LATENTSKY_API_RATE", "ten")
    with pytest.raises(ConfigError, match="LATENTSKY_API_RATE='ten'"):
        config.api_rate()


def test_only_config_reads_latentsky_variables() -> None:
    """backend/ and app/ read the environment through backend.config (models/ may read
    LATENTSKY_DEVICE: it never imports backend/)."""
    import re

    repo = Path(__file__).resolve().parents[2]
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    allowed = {"backend/config.py"}
    third_party = ("USER", "OMP_NUM_THREADS", "PANEL_", "env)")
    offenders = []
    for path in [*repo.glob("backend/**/*.py"), *repo.glob("app/**/*.py")]:
        name = str(path.relative_to(repo))
        if name in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if reads.search(line) and not any(t in line for t in third_party):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_the_readme_table_lists_every_variable_config_reads() -> None:
    """README's configuration table names every environment variable backend/config.py reads,
    and no LatentSky variable that it does not read."""
    import re

    repo = Path(__file__).resolve().parents[2]
    source = (repo / "backend" / "config.py").read_text()
    read = set(re.findall(r"\"((?:LATENTSKY|DATABASE|REDIS)_[A-Z0-9_]+)\"", source))
    assert {"LATENTSKY_HOME", "DATABASE_URL", "LATENTSKY_SCHEDULER", "REDIS_URL"} <= read
    rows = [
        line for line in (repo / "README.md").read_text().splitlines() if line.startswith("| `")
    ]
    listed = {
        name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }
    assert read - listed == set(), "read by backend/config.py, missing from README's table"
    ours = {name for name in listed if not name.startswith("PANEL_")}
    assert ours - read == set(), "in README's table, read nowhere by backend/config.py"
