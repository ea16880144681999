"""Render an evaluation report (Markdown) and store it with its JSON and plots.

Stored under ``$LATENTSKY_HOME/products/<survey>/evaluation/<task>/``: ``report.md``,
``report.json`` and ``*.png`` (the latest report); before a new report is written, the files of
the one it replaces are moved into ``previous/`` there (one level: the report before that is
dropped). Each file is written atomically; a file lock serialises concurrent writers.

Light on purpose: no torch, no sklearn, so the web app can import it. Every string that may
come from a user (survey, class and column names, notes) is escaped for Markdown and HTML.
"""

from __future__ import annotations

import fcntl
import html
import json
import math
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write
from backend.config import get_settings
from backend.survey.meta import validate_survey_name

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
PREVIOUS = "previous"
TASK_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # as backend.validation
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_MD_LEADING = re.compile(r"^([-+=]|\d+(?=[.)]))")


def evaluation_root(survey: str) -> Path:
    return get_settings().products_dir / validate_survey_name(survey) / "evaluation"


def report_dir(survey: str, task: str) -> Path:
    if not TASK_PATTERN.fullmatch(task):
        raise ValueError(f"task name {task!r}: use letters, digits, '_', '.', '-' (max 64)")
    return evaluation_root(survey) / task


def escape(value: Any) -> str:
    """``value`` as inert Markdown text: HTML-escaped, Markdown punctuation backslash-escaped,
    on one line (safe inside a table cell)."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    text = html.escape(text, quote=False)
    match = _MD_LEADING.match(text)
    if match:  # a list marker or heading rule at the start of a line
        head = match.group(0)
        text = f"{head}\\{text[len(head) :]}" if head[0].isdigit() else "\\" + text
    return text


# -- formatting -----------------------------------------------------------------------------------
def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


def _ci(value: Any, ci: Any) -> str:
    if not ci or any(v is None for v in ci):
        return _num(value)
    return f"{_num(value)} [{_num(ci[0])}, {_num(ci[1])}]"


def _table(header: list[str], rows: Iterable[list[str]], first_left: bool = True) -> list[str]:
    align = [":---" if (i == 0 and first_left) else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _dig(item: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(item, dict):
            return None
        item = item.get(key)  # type: ignore[assignment]
    return item


def _item(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...`` or None (keys may hold dots: class names)."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _family(
    reps: list[dict[str, Any]], rows: list[tuple[str, Callable[[dict[str, Any]], Any]]]
) -> list[str]:
    header = ["", *(f"**{escape(r['name'])}**" for r in reps)]
    body = [[label, *(_num(get(r)) for r in reps)] for label, get in rows]
    return _table(header, body)


def _stored_rankings(reps: list[dict[str, Any]]) -> list[str]:
    """How each representation's stored anomaly ranking combines its scorers (escaped), when
    one is a formula or they differ."""
    combinations = {str(_dig(r, "anomaly.stored.combination") or "") for r in reps} - {""}
    if not any("(" in c for c in combinations) and len(combinations) < 2:
        return []  # one plain max / mean: named in the row's label
    out = []
    for r in reps:
        stored = _dig(r, "anomaly.stored") or {}
        how = str(stored.get("combination") or "")
        if not how:
            continue
        if "(" not in how:  # "max" / "mean" of the scorers
            how = f"{how} of {', '.join(stored.get('scorers') or [])}"
        if stored.get("chosen_by"):
            how += f", chosen by {stored['chosen_by']} labelled anomalies outside the val rows"
        out.append(f"{escape(r['name'])}: {escape(how)}")
    return out


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a table per metric family, representations as columns."""
    reps = report.get("representations", [])
    split = report.get("split", {})
    classes = report.get("classes", [])
    out = [
        f"# Evaluation of survey {escape(report.get('survey', ''))}, task "
        f"{escape(report.get('task', ''))}",
        "",
        f"Labels: catalog column **{escape(report.get('label_column', ''))}**"
        + (
            "; merged: "
            + ", ".join(f"{escape(k)} → {escape(v)}" for k, v in report["merge"].items())
            if report.get("merge")
            else ""
        )
        + ("; rare: " + ", ".join(escape(c) for c in report["rare"]) if report.get("rare") else "")
        + f". Made {escape(report.get('created', ''))} in {_num(report.get('seconds'), 0)} s.",
        "",
        f"Validation split: {_num(split.get('n_val'))} val and {_num(split.get('n_train'))} train "
        f"objects of {_num(split.get('n_labelled'))} labelled ({_num(split.get('n_objects'))} in "
        f"the survey). Majority class ({escape(split.get('majority_class', ''))}): accuracy "
        f"{_num(split.get('majority_accuracy'))}, balanced accuracy "
        f"{_num(split.get('majority_balanced_accuracy'))}.",
        "",
    ]
    counts = split.get("counts", {})
    out += _table(
        ["class", "train", "val", "all"],
        [
            [escape(c), *(_num(counts.get(c, {}).get(k)) for k in ("train", "val", "all"))]
            for c in classes
        ],
    )
    if not reps:
        out += ["*No representation was evaluated.*", ""]
    else:
        out += ["## kNN classification (k = 10, cosine; train part as reference)", ""]
        out += _family(
            reps,
            [
                ("accuracy", lambda r: _dig(r, "knn.accuracy")),
                ("balanced accuracy", lambda r: _dig(r, "knn.balanced_accuracy")),
            ],
        )
        out += ["## Linear probe, balanced accuracy on val", ""]
        fractions = list(reps[0].get("probe", {}))
        out += _family(
            reps,
            [
                (
                    f"{escape(f)} of train ({_num(_dig(reps[0], f'probe.{f}.n_train'))})",
                    lambda r, f=f: _dig(r, f"probe.{f}.balanced_accuracy"),
                )
                for f in fractions
            ],
        )
        out += ["## Similarity precision@10 (val queries against the whole survey)", ""]
        rows = [
            (escape(c), lambda r, c=c: _item(_dig(r, "precision_at_10.per_class"), c))
            for c in classes
        ]
        rows += [
            ("*mean over classes*", lambda r: _dig(r, "precision_at_10.macro")),
            ("*mean over queries*", lambda r: _dig(r, "precision_at_10.micro")),
        ]
        out += _family(reps, rows)
        if report.get("rare"):
            out += ["## Rare-class retrieval: mean average precision@100 of rare val queries", ""]
            per_class = _dig(reps[0], "rare_retrieval.per_class") or {}
            rows = [
                (
                    f"{escape(c)} ({_num((per_class.get(c) or {}).get('n_queries'))} queries)",
                    lambda r, c=c: _item(_dig(r, "rare_retrieval.per_class"), c, "map"),
                )
                for c in report["rare"]
            ]
            rows.append(("*all rare queries*", lambda r: _dig(r, "rare_retrieval.map")))
            out += _family(reps, rows)
            n_rare = _dig(reps[0], "anomaly.n_rare")
            embedding_only = report.get("settings", {}).get("anomaly_scorers", [])
            out += [
                f"## Anomaly recall@100 of the {_num(n_rare)} rare objects",
                "",
                f"Share of all rare objects in the top 100 of an anomaly ranking. The "
                f"embedding-only ranking (scorers: {escape(', '.join(embedding_only))}) is fitted "
                f"on each representation alike, to compare them; the stored product is "
                f"`python -m backend score`'s ranking, the one the app shows, with its own "
                f"scorers (named in its row; its pixel scorers do not depend on the encoder). "
                f"Random expectation "
                f"{_num(report.get('anomaly_random_expectation'))} (100 / N).",
                "",
            ]
            rows = [
                (
                    f"embedding-only ({escape(' + '.join(embedding_only))})",
                    lambda r: _dig(r, "anomaly.recall_at_100"),
                )
            ]
            stored = [_dig(r, "anomaly.stored.scorers") for r in reps]
            stored_scorers = next((s for s in stored if s), None)
            described = _stored_rankings(reps)
            if any(_dig(r, "anomaly.stored") for r in reps):
                label = "stored anomaly product (`score`"
                if described:  # each encoder's combination, named below the table
                    label += "; combination below)"
                else:
                    label += f": {escape(' + '.join(stored_scorers))})" if stored_scorers else ")"
                rows.append((label, lambda r: _dig(r, "anomaly.stored.recall_at_100")))
            val_k = _dig(reps[0], "anomaly.val_k")
            if val_k:
                n_val = _num(_dig(reps[0], "anomaly.val_n_rare"))
                rows.append(
                    (
                        f"embedding-only, val rows only (recall@{val_k} of {n_val} rare)",
                        lambda r: _dig(r, "anomaly.val_recall"),
                    )
                )
                if any(_dig(r, "anomaly.stored.val_recall") is not None for r in reps):
                    rows.append(
                        (
                            f"stored anomaly product, val rows only (recall@{val_k})",
                            lambda r: _dig(r, "anomaly.stored.val_recall"),
                        )
                    )
            out += _family(reps, rows)
            if described:
                out += ["Stored rankings: " + "; ".join(described) + ".", ""]
    classifiers = report.get("classifiers", [])
    if classifiers:
        out += ["## Classifiers on the val rows (95% bootstrap intervals, 1,000 resamples)", ""]
        body = []
        for c in classifiers:
            if "note" in c:
                body.append([escape(c["version"]), escape(c["note"]), "", "", "", ""])
                continue
            body.append(
                [
                    escape(c["version"]),
                    escape(c.get("encoder") or "–"),
                    _num(c.get("n_val")),
                    _num(c.get("accuracy")),
                    _ci(c.get("balanced_accuracy"), c.get("balanced_accuracy_ci")),
                    _ci(c.get("ece"), c.get("ece_ci")),
                ]
            )
        out += _table(
            ["classifier", "encoder", "val", "accuracy", "balanced accuracy", "ECE"], body
        )
        for c in classifiers:
            if c.get("unmatched_classes"):
                out.append(
                    f"- classifier {escape(c['version'])}: classes without a label counterpart "
                    f"(always wrong): {', '.join(escape(n) for n in c['unmatched_classes'])}"
                )
        out.append("")
    if report.get("notes"):
        out += ["## Notes", "", *(f"- {escape(n)}" for n in report["notes"]), ""]
    return "\n".join(out).rstrip() + "\n"


# -- storage --------------------------------------------------------------------------------------
def _json_ready(value: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, NumPy scalars -> Python (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(_json_ready(report), indent=2, allow_nan=False) + "\n"


def write_report(
    report: dict[str, Any],
    directory: Path,
    figures: dict[str, bytes] | None = None,
    keep_previous: bool = True,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the PNG ``figures`` ({file name: bytes}) into
    ``directory``; the files of an earlier report there move to ``previous/`` first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    text = to_json(report)
    written: dict[str, Path] = {}
    with open(directory.parent / f".{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if keep_previous and (directory / REPORT_JSON).is_file():
            _keep_previous(directory)
        for old in directory.glob("*.png"):
            if old.name not in (figures or {}):
                old.unlink(missing_ok=True)
        for name, data in (figures or {}).items():
            path = directory / name
            atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data))
            written[name] = path
        atomic_write(directory / REPORT_JSON, lambda tmp: tmp.write_text(text))
        atomic_write(directory / REPORT_MD, lambda tmp: tmp.write_text(markdown))
    written[REPORT_JSON] = directory / REPORT_JSON
    written[REPORT_MD] = directory / REPORT_MD
    return written


def _keep_previous(directory: Path) -> None:
    """Copy the current report's files into a fresh folder and swap it in as ``previous/``."""
    staging = directory / f".{PREVIOUS}.incoming"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for path in directory.iterdir():
        if path.is_file() and (path.suffix == ".png" or path.name in (REPORT_MD, REPORT_JSON)):
            shutil.copy2(path, staging / path.name)
    target = directory / PREVIOUS
    old = directory / f".{PREVIOUS}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


# -- reading (the app) ----------------------------------------------------------------------------
def latest_report(survey: str, task: str | None = None) -> tuple[Path, dict[str, Any]] | None:
    """(folder, report) of the task's report, or of the newest one when ``task`` is None."""
    root = evaluation_root(survey)
    if task is not None:
        candidates = [report_dir(survey, task) / REPORT_JSON]
    elif root.is_dir():
        candidates = sorted(
            root.glob(f"*/{REPORT_JSON}"), key=lambda p: p.stat().st_mtime, reverse=True
        )
    else:
        candidates = []
    for path in candidates:
        try:
            return path.parent, json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None


def report_tasks(survey: str) -> list[str]:
    """Tasks with a stored report for the survey."""
    root = evaluation_root(survey)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{REPORT_JSON}"))
