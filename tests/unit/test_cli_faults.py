"""Faults outside the user's input end a command with one ``error:`` line (exit 2), not a
traceback: a decompression bomb among pictures, a full disk while simulating, a missing database
driver."""

from __future__ import annotations

import errno
import json
import struct
import sys
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zarr

from backend.cli import main
from backend.survey import Survey
from tests.unit.ingest_helpers import write_pictures


def bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    """A PNG whose header claims ``width`` x ``height`` pixels (what a decoder would allocate)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_skipped_with_its_reason(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "pics"
    write_pictures(folder, ["a", "b"], size=32)
    bomb_png(folder / "bomb.png")
    assert main(["ingest", "images", str(folder), "--survey", "pics", "--no-progress"]) == 0
    survey = Survey.open("pics")
    assert len(survey) == 2
    report = json.loads((survey.path / "ingest_report.json").read_text())
    reasons = {s["source"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"bomb.png"}
    assert (
        "decompression bomb" in reasons["bomb.png"] and "400,000,000 pixels" in reasons["bomb.png"]
    )


def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("stage", ["start", "pixels", "catalog"])
def test_a_full_disk_while_simulating_is_one_error_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, stage: str
) -> None:
    monkeypatch.setenv("LATENTSKY_HOME", str(tmp_path))
    if stage == "start":  # the writer's first file
        real = Path.write_text
        monkeypatch.setattr(
            Path, "write_text",
            lambda self, *a, **k: _no_space() if self.name == "writer.pid" else real(self, *a, **k),
        )  # fmt: skip
    elif stage == "pixels":
        monkeypatch.setattr(zarr.Array, "append", _no_space)
    else:  # the catalog's rows are written with pyarrow (parts, then the joined file)
        monkeypatch.setattr(pq, "write_table", _no_space)
    args = ["simulate", "--survey", "full", "--n", "4", "--stamp", "16", "--workers", "1"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "no space left on device" in err.lower()
    assert sorted(p.name for p in (tmp_path / "surveys").iterdir()) == []  # no .incoming-*


@pytest.mark.parametrize(
    ("url", "module", "package"),
    [("postgresql://u@127.0.0.1:1/db", "psycopg", "psycopg"),  # SQLAlchemy 2.1's default
     ("postgresql+psycopg://u@127.0.0.1:1/db", "psycopg", "psycopg"),
     ("postgresql+psycopg2://u@127.0.0.1:1/db", "psycopg2", "psycopg2-binary")],
)  # fmt: skip
def test_a_missing_database_driver_is_named_in_one_line(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    url: str, module: str, package: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    assert main(["labels", "agreement", "--survey", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"'{package}'" in err and "DATABASE_URL" in err and "u@" not in err
