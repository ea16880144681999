"""Label schemas per survey from YAML: ``assets/label_schemas/<survey>.yaml`` or default."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from backend.survey.meta import validate_survey_name

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "assets" / "label_schemas"


class SchemaError(ValueError):
    """A label schema file is malformed (the message names the file and field)."""


@dataclass(frozen=True)
class LabelClass:
    name: str
    key: str  # keyboard shortcut, e.g. "1"
    colour: str  # CSS colour for buttons and maps


@dataclass(frozen=True)
class LabelSchema:
    task: str
    classes: list[LabelClass]
    description: str = ""
    source: str = ""
    by_name: dict[str, LabelClass] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.classes})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def colour_key(self) -> dict[str, str]:
        return {c.name: c.colour for c in self.classes}


def load_schema(survey: str, directory: Path | None = None) -> LabelSchema:
    """The survey's own schema file when present, else ``default.yaml``."""
    directory = Path(directory) if directory else SCHEMA_DIR
    own = directory / f"{validate_survey_name(survey)}.yaml"
    return read_schema(own if own.is_file() else directory / "default.yaml")


def read_schema(path: Path) -> LabelSchema:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path}: cannot read label schema ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("classes"), list):
        raise SchemaError(f"{path}: needs a 'classes' list")
    classes, keys = [], set()
    for i, item in enumerate(raw["classes"]):
        if not isinstance(item, dict) or not str(item.get("name", "")).strip():
            raise SchemaError(f"{path}: classes[{i}] needs a 'name'")
        key = str(item.get("key", "")).strip()
        if key and key in keys:
            raise SchemaError(f"{path}: classes[{i}] repeats key {key!r}")
        keys.add(key)
        classes.append(
            LabelClass(str(item["name"]).strip(), key, str(item.get("colour", "#888888")))
        )
    if len({c.name for c in classes}) != len(classes):
        raise SchemaError(f"{path}: class names must be unique")
    return LabelSchema(
        task=str(raw.get("task", "class")),
        classes=classes,
        description=str(raw.get("description", "")),
        source=str(path),
    )
