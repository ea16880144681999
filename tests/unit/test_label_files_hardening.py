"""Label files from outside: weights must be finite and in (0, 100]; CSV exports cannot start a
spreadsheet formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from app.exporting import table_bytes
from backend.cli import main
from backend.labels import LabelStore
from backend.labels.files import write_frame
from backend.survey import Survey


def labels_csv(path: Path, weights: list[str]) -> Path:
    ids = [f"tiny-{i:04d}" for i in range(len(weights))]
    lines = ["object_id,value,weight"] + [
        f"{i},merger,{w}" for i, w in zip(ids, weights, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("weight", "why"),
    [("1e308", "at most 100"), ("-50", "above 0"), ("0", "above 0"), ("NaN", "a finite number"),
     ("inf", "a finite number"), ("heavy", "a finite number"), ("", "a finite number")],
)  # fmt: skip
def test_bad_weights_are_refused_with_file_row_and_field(
    tiny_survey: Survey, tmp_path: Path, capsys: pytest.CaptureFixture, weight: str, why: str
) -> None:
    src = labels_csv(tmp_path / "labels.csv", ["1", "0.5", weight])
    assert main(["labels", "import", str(src), "--survey", "tiny", "--user", "ana"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "labels.csv" in err and "row 3" in err and "weight" in err and why in err
    assert LabelStore().count("tiny") == 0  # all or nothing


def test_good_weights_are_kept(tiny_survey: Survey, tmp_path: Path) -> None:
    src = labels_csv(tmp_path / "labels.csv", ["1", "0.25", "100"])
    assert main(["labels", "import", str(src), "--survey", "tiny", "--user", "ana"]) == 0
    assert sorted(LabelStore().current("tiny")["weight"]) == [0.25, 1.0, 100.0]


def test_the_store_refuses_bad_weights_too(tiny_survey: Survey) -> None:
    from backend.labels import LabelError

    rows = pd.DataFrame({"survey": ["tiny", "tiny"], "object_id": ["tiny-0001", "tiny-0002"],
                         "value": ["merger", "merger"], "weight": [1.0, float("nan")]})  # fmt: skip
    with pytest.raises(LabelError, match=r"row 2.*weight"):
        LabelStore().add_many(rows, user="ana", source="import")
    assert LabelStore().count("tiny") == 0


HOSTILE = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "ok"]


def _cells(text: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(text)))
    return [cell for row in rows[1:] for cell in row]


def test_csv_exports_neutralise_formula_prefixes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user": HOSTILE, "score": [-1.5, 2, 3, 4, 5, 6, 7]})
    path = write_frame(frame, tmp_path / "labels.csv")
    app_csv = table_bytes(frame, "CSV").getvalue().decode()
    with open(path, newline="") as fh:  # keep the \r inside the quoted cell
        label_csv = fh.read()
    for text in (label_csv, app_csv):
        cells = _cells(text)
        users = cells[0::2]
        expected = ["'" + h.replace("\r", "\n") for h in HOSTILE[:6]]  # a bare CR splits rows
        assert users[:6] == expected and users[6] == "ok"
        assert cells[1] == "-1.5"  # numbers stay numbers
    back = pd.read_parquet(write_frame(frame, tmp_path / "labels.parquet"))
    assert back["user"].tolist() == HOSTILE  # only spreadsheets' format is neutralised
