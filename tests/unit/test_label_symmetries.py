"""A label task declares its mirror symmetry: invariant, no flips, or class pairs it swaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.labels.schema import SchemaError, make_schema, read_schema, save_schema

CLASSES = "classes: [{name: elliptical}, {name: spiral_cw}, {name: spiral_acw}]\n"


def _schema(tmp_path: Path, symmetries: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"task: direction\n{symmetries}{CLASSES}")
    return path


def test_mirror_pairs_read_from_the_schema_and_forbid_plain_flips(tmp_path: Path) -> None:
    schema = read_schema(_schema(tmp_path, "symmetries: {mirror: {spiral_cw: spiral_acw}}\n"))
    assert schema.mirror_pairs == (("spiral_cw", "spiral_acw"),)
    assert schema.mirror_symmetric is False
    plain = read_schema(_schema(tmp_path, ""))
    assert plain.mirror_symmetric is True and plain.mirror_pairs == ()
    assert read_schema(_schema(tmp_path, "symmetries: {mirror: false}\n")).mirror_symmetric is False


@pytest.mark.parametrize(
    ("mirror", "message"),
    [
        ("{spiral_cw: ring}", "'ring', not a class"),
        ("{spiral_cw: spiral_cw}", "twice|itself"),
        ("{spiral_cw: spiral_acw, spiral_acw: elliptical}", "twice"),
        ("[spiral_cw, spiral_acw]", "symmetries"),
    ],
)
def test_a_bad_mirror_declaration_names_the_file_and_the_problem(
    tmp_path: Path, mirror: str, message: str
) -> None:
    path = _schema(tmp_path, f"symmetries: {{mirror: {mirror}}}\n")
    with pytest.raises(SchemaError, match=message) as err:
        read_schema(path)
    assert str(path) in str(err.value)


def test_saved_mirror_pairs_read_back(home: Path) -> None:
    from dataclasses import replace

    schema = replace(
        make_schema(["elliptical", "spiral_cw", "spiral_acw"]),
        mirror_symmetric=False,
        mirror_pairs=(("spiral_cw", "spiral_acw"),),
    )
    again = read_schema(save_schema("gz", schema))
    assert again.mirror_pairs == (("spiral_cw", "spiral_acw"),)
    assert again.mirror_symmetric is False


def test_a_schema_file_is_parsed_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every label request reads the survey's schema; parsing YAML each time was half of the
    API's CPU per label (bench/bench_pg_labels.py)."""
    import yaml

    from backend.labels import schema as schema_module

    calls = []
    real = yaml.safe_load
    monkeypatch.setattr(schema_module.yaml, "safe_load", lambda t: calls.append(1) or real(t))
    path = _schema(tmp_path, "")
    assert read_schema(path).names == ["elliptical", "spiral_cw", "spiral_acw"]
    assert read_schema(path).names == ["elliptical", "spiral_cw", "spiral_acw"]
    assert len(calls) == 1
    save_schema_path = tmp_path / "s.yaml"
    tmp = tmp_path / "new.yaml"
    tmp.write_text("task: direction\nclasses: [{name: a}, {name: b}]\n")
    tmp.replace(save_schema_path)  # how save_schema writes: a new file over the old
    assert read_schema(path).names == ["a", "b"]
