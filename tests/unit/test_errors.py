"""One error hierarchy: every user-facing error of backend/ is a ``backend.errors.UserError``
(keeping its other bases), and the CLI reports any of them as one ``error:`` line, exit 2."""

from __future__ import annotations

import argparse
import importlib

import pytest

from backend import cli
from backend.errors import LatentSkyError, UserError

# (module, class, the base it had before the hierarchy: ``except`` clauses still catch it)
USER_FACING = [
    ("backend.survey.meta", "SurveyError", ValueError),
    ("backend.labels.store", "LabelError", ValueError),
    ("backend.labels.schema", "SchemaError", ValueError),
    ("backend.feedback", "FeedbackError", ValueError),
    ("backend.registry", "RegistryError", ValueError),
    ("backend.products", "ProductError", FileNotFoundError),
    ("backend.latent.errors", "LatentError", ValueError),
    ("backend.latent.errors", "MissingProductError", FileNotFoundError),
    ("backend.jobs.table", "JobError", ValueError),
    ("backend.config", "ConfigError", ValueError),
    ("backend.auth.roles", "RoleError", ValueError),
    ("backend.auth.users", "AccountError", ValueError),
    ("backend.usertext", "UserNameError", ValueError),
    ("backend.commands.backup", "BackupError", ValueError),
    ("backend.ingest.report", "IngestError", Exception),
    ("backend.ingest.fits_read", "FitsReadError", ValueError),
    ("backend.ingest.images", "PictureError", ValueError),
    ("backend.evaluation.labels", "EvaluationError", Exception),
    ("backend.modelling.foreign", "ImportModelError", Exception),
]


@pytest.mark.parametrize(("module", "name", "old_base"), USER_FACING)
def test_user_facing_errors_are_user_errors_and_keep_their_bases(
    module: str, name: str, old_base: type[Exception]
) -> None:
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, UserError)
    assert issubclass(error, LatentSkyError)
    assert issubclass(error, old_base)


@pytest.mark.parametrize(("module", "name", "old_base"), USER_FACING)
def test_cli_reports_every_user_error_as_one_line(
    module: str,
    name: str,
    old_base: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = getattr(importlib.import_module(module), name)

    def fail(_args: argparse.Namespace) -> int:
        raise _make(error)

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=fail, verbose=False)
    monkeypatch.setattr(cli, "build_parser", lambda only=None: parser)
    assert cli.main([]) == 2
    assert capsys.readouterr().err.strip() == "error: it went wrong"


def _make(error: type[Exception]) -> Exception:
    try:
        return error("it went wrong")
    except TypeError:  # an error with its own constructor
        pytest.skip(f"{error.__name__} takes other arguments")


def test_model_errors_keep_their_own_base_and_are_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.errors import InputShapeError, ModelError

    assert not issubclass(ModelError, UserError)  # models/ never imports backend/

    def fail(_args: argparse.Namespace) -> int:
        raise InputShapeError("expected 3 bands")

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=fail, verbose=False)
    monkeypatch.setattr(cli, "build_parser", lambda only=None: parser)
    assert cli.main([]) == 2
    assert capsys.readouterr().err.strip() == "error: expected 3 bands"
