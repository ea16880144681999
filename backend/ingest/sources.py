"""Finding input files: one file or a folder (recursively), by suffix, with clear errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from backend.ingest.report import IngestError


def has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    """True when the lower-cased file name ends with one of ``suffixes`` (e.g. ``.fits.gz``)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def find_inputs(path: str | Path, suffixes: Sequence[str], what: str) -> tuple[list[Path], int]:
    """Files under ``path`` ending in ``suffixes``, sorted; plus how many other files were seen.

    ``path`` may be one file (taken whatever its suffix) or a folder searched recursively;
    hidden files and folders are ignored. Raises :class:`IngestError` when the path does not
    exist or holds no matching file.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise IngestError(f"{root}: no such file or folder")
    if root.is_file():
        return [root], 0
    if not root.is_dir():
        raise IngestError(f"{root}: not a file or folder")
    found, others = [], 0
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if has_suffix(p, suffixes):
            found.append(p)
        else:
            others += 1
    if not found:
        extra = f" ({others} other files there)" if others else " (the folder is empty)"
        raise IngestError(
            f"{root}: no {what} files ({', '.join('*' + s for s in suffixes)}){extra}"
        )
    return found, others


def stem(path: Path, suffixes: Sequence[str]) -> str:
    """File name without the matched suffix: ``a.fits.gz`` -> ``a``."""
    name = path.name
    for s in sorted(suffixes, key=len, reverse=True):
        if name.lower().endswith(s):
            return name[: -len(s)] or name
    return path.stem


def unique_ids(names: Iterable[str]) -> list[str]:
    """Make ids unique by suffixing repeats: ``a, a, b`` -> ``a, a-2, b``."""
    seen: Counter[str] = Counter()
    taken = set()
    out = []
    for name in names:
        seen[name] += 1
        candidate = name if seen[name] == 1 else f"{name}-{seen[name]}"
        while candidate in taken:
            seen[name] += 1
            candidate = f"{name}-{seen[name]}"
        taken.add(candidate)
        out.append(candidate)
    return out


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to the ingested folder (or its name when ``root`` is the file)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.name
    return str(rel) if str(rel) != "." else path.name
