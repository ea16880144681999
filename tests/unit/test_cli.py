"""The command line: listing surveys, clear errors, and the project files that wire it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from backend.cli import main
from backend.survey import Survey
from tests.conftest import REPO_ROOT


def test_surveys_lists_count_bands_shape_source(
    tiny_survey: Survey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["surveys"]) == 0
    out = capsys.readouterr().out
    header, row = out.strip().splitlines()
    assert header.split()[:6] == ["NAME", "COUNT", "BANDS", "SHAPE", "PIXEL", "SOURCE"]
    assert row.split()[:6] == ["tiny", "150", "g,r,i", "3x16x16", '0.2"', "test"]


def test_surveys_on_empty_home_says_how_to_start(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["surveys"]) == 0
    assert "python -m backend simulate" in capsys.readouterr().out


def test_bad_configuration_is_an_error_line_not_a_traceback(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LATENTSKY_DEVICE", "tpu")
    assert main(["surveys"]) == 2
    assert capsys.readouterr().err.startswith("error: LATENTSKY_DEVICE='tpu'")


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from backend.cli import COMMANDS

    for name, _module in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"python -m backend {name}" in capsys.readouterr().out


def test_environment_yml_mirrors_pyproject_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) - {"-e ."} == wanted


def test_procfile_serves_app_and_runs_worker() -> None:
    lines = dict(
        line.split(":", 1) for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line
    )
    assert "panel serve app/main.py" in lines["web"] and "$PORT" in lines["web"]
    assert lines["worker"].strip() == "python -m backend worker"
