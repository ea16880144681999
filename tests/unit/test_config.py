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
