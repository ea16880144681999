"""Label schemas per survey from YAML.

A survey's schema is, first found: ``$LATENTSKY_HOME/label_schemas/<survey>.yaml`` (created in
the UI or by ``python -m backend labels schema``), ``assets/label_schemas/<survey>.yaml``
(shipped with the code), else ``assets/label_schemas/default.yaml``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from backend.atomic import atomic_write
from backend.config import get_settings
from backend.errors import UserError
from backend.survey.meta import validate_survey_name

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "assets" / "label_schemas"
COLOUR = re.compile(r"#(?:[0-9A-Fa-f]{3,4}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})|[A-Za-z]{3,30}")
KEYS = "1234567890"  # shortcuts given to classes in order when a schema names none
PALETTE = [
    "#e45756", "#f58518", "#4c78a8", "#72b7b2", "#54a24b",
    "#b279a2", "#ff9da6", "#9d755d", "#eeca3b", "#bab0ac",
]  # fmt: skip


class SchemaError(UserError, ValueError):
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
    mirror_symmetric: bool = True  # False: a mirror image may change the class (spiral winding)
    # class pairs a mirror image swaps (cw <-> acw): flips then swap the labels and heads are
    # mirror-equivariant (models.mirror); implies mirror_symmetric False
    mirror_pairs: tuple[tuple[str, str], ...] = ()
    # classes that are anomalies (e.g. merger, dont_know): their labelled objects choose how the
    # anomaly scorers are combined (backend.latent.labelled)
    anomalies: tuple[str, ...] = ()
    by_name: dict[str, LabelClass] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.classes})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def colour_key(self) -> dict[str, str]:
        return {c.name: c.colour for c in self.classes}


def user_schema_dir() -> Path:
    """Where schemas made by users live (in the data root, not in the code)."""
    return get_settings().home / "label_schemas"


def own_schema_path(survey: str, directory: Path | None = None) -> Path | None:
    """The file of the survey's own schema (data root, then ``directory``), None without one."""
    directory = Path(directory) if directory else SCHEMA_DIR
    name = validate_survey_name(survey)
    for own in (user_schema_dir() / f"{name}.yaml", directory / f"{name}.yaml"):
        if own.is_file():
            return own
    return None


def load_schema(survey: str, directory: Path | None = None) -> LabelSchema:
    """The survey's own schema (data root, then ``directory``), else ``default.yaml``."""
    own = own_schema_path(survey, directory)
    return read_schema(own or (Path(directory) if directory else SCHEMA_DIR) / "default.yaml")


def make_schema(
    names: list[str], colours: list[str] | None = None, task: str = "class", description: str = ""
) -> LabelSchema:
    """A schema from class names (keys 1-9, 0 and a palette given in order); validated."""
    names = [str(n).strip() for n in names if str(n).strip()]
    if len(names) < 2:
        raise SchemaError("a label schema needs at least two classes")
    if len(names) > len(KEYS):
        raise SchemaError(f"a label schema has at most {len(KEYS)} classes (one key each)")
    bad = [n for n in names if not _is_class_name(n)]
    if bad:
        raise SchemaError(
            f"class names use letters, digits, '_' and '-' only (max 64 characters): {bad}"
        )
    if len(set(names)) != len(names):
        raise SchemaError("class names must be unique")
    colours = list(colours or []) + PALETTE[len(colours or []) :]
    classes = [LabelClass(n, KEYS[i], colours[i % len(colours)]) for i, n in enumerate(names)]
    return LabelSchema(task=task, classes=classes, description=description)


def save_schema(survey: str, schema: LabelSchema) -> Path:
    """Write ``schema`` as the survey's own (atomically, in the data root); returns the path."""
    path = user_schema_dir() / f"{validate_survey_name(survey)}.yaml"
    atomic_write(path, lambda tmp: tmp.write_text(schema_text(schema)))
    read_schema(path)  # what was written reads back
    return path


def schema_text(schema: LabelSchema, header: str = "", declared_only: bool = False) -> str:
    """``schema`` as YAML after ``header`` (comment lines). ``declared_only``: symmetries are
    written only when declared (mirror pairs or ``mirror: false``), else ``symmetries: {}``."""
    mirror = dict(schema.mirror_pairs) if schema.mirror_pairs else schema.mirror_symmetric
    data = {
        "task": schema.task,
        "description": schema.description,
        "symmetries": {} if declared_only and mirror is True else {"mirror": mirror},
        **({"anomalies": list(schema.anomalies)} if schema.anomalies else {}),
        "classes": [{"name": c.name, "key": c.key, "colour": c.colour} for c in schema.classes],
    }
    comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    return comments + yaml.safe_dump(data, sort_keys=False)


def _is_class_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(ch.isalnum() or ch in "_-" for ch in name)


def read_schema(path: Path) -> LabelSchema:
    """The schema in ``path``, parsed once per version of the file (every label request reads
    its survey's schema; a rewrite, always a new file, gives a new key)."""
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read label schema ({exc})") from exc
    return _read_schema(str(path), st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=64)
def _read_schema(path: str, mtime_ns: int, size: int, inode: int) -> LabelSchema:
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
        colour = str(item.get("colour", "#888888")).strip()
        if not COLOUR.fullmatch(colour):
            raise SchemaError(
                f"{path}: classes[{i}] colour {colour!r} is not a colour (use #rrggbb, "
                "#rgb or a CSS colour name)"
            )
        classes.append(LabelClass(str(item["name"]).strip(), key, colour))
    if len({c.name for c in classes}) != len(classes):
        raise SchemaError(f"{path}: class names must be unique")
    symmetries = raw.get("symmetries", {}) or {}
    mirror = symmetries.get("mirror", True) if isinstance(symmetries, dict) else None
    if not isinstance(mirror, bool | dict):
        raise SchemaError(
            f"{path}: 'symmetries' must look like {{mirror: true}}, {{mirror: false}} or "
            "{mirror: {spiral_cw: spiral_acw}} (class pairs a mirror image swaps)"
        )
    pairs = (
        _mirror_pairs(path, mirror, [c.name for c in classes]) if isinstance(mirror, dict) else ()
    )
    anomalies = _anomalies(path, raw.get("anomalies"), [c.name for c in classes])
    return LabelSchema(
        anomalies=anomalies,
        mirror_symmetric=mirror is True and not pairs,
        mirror_pairs=pairs,
        task=str(raw.get("task", "class")),
        classes=classes,
        description=str(raw.get("description", "")),
        source=str(path),
    )


def _anomalies(path: Path, value: object, names: list[str]) -> tuple[str, ...]:
    """Validated ``anomalies: [class, ...]`` (classes whose objects are anomalies)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(f"{path}: 'anomalies' must be a list of class names, e.g. [merger]")
    unknown = [v for v in value if v not in names]
    if unknown:
        raise SchemaError(f"{path}: anomalies names {unknown[0]!r}, not a class")
    return tuple(dict.fromkeys(value))


def _mirror_pairs(path: Path, mirror: dict, names: list[str]) -> tuple[tuple[str, str], ...]:
    """Validated class pairs of ``symmetries: {mirror: {a: b, ...}}``."""
    pairs, seen = [], set()
    for a, b in mirror.items():
        a, b = str(a), str(b)
        for name in (a, b):
            if name not in names:
                raise SchemaError(f"{path}: symmetries.mirror names {name!r}, not a class")
            if name in seen:
                raise SchemaError(f"{path}: symmetries.mirror lists {name!r} twice")
            seen.add(name)
        if a == b:
            raise SchemaError(f"{path}: symmetries.mirror pairs {a!r} with itself")
        pairs.append((a, b))
    return tuple(pairs)
