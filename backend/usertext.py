"""Text that people type or upload: user names checked in one place, spreadsheet cells made inert.

:func:`validate_user_name` is the one rule for the names labels, votes, interest scores and the
HTTP API are stored under: NFC-normalised, stripped, 1-256 characters, and none of the
characters that hide what a name is (controls and NUL, lone surrogates, zero-width and bidi
formatting characters, private-use and unassigned code points, line separators), so
``"ana\\u200b\\u202e"`` cannot pass for ``"ana"``.

:func:`neutralise_cell` / :func:`csv_safe` prefix text cells that a spreadsheet would read as a
formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) with ``'`` (CSV injection), and keep
carriage returns from splitting a row.
"""

from __future__ import annotations

import unicodedata

import pandas as pd

from backend.errors import UserError

MAX_NAME = 256
#: Unicode general categories refused in names: controls (NUL, tab, newline...), format
#: characters (zero-width space/joiners, bidi embeddings/overrides/isolates, BOM, soft hyphen),
#: surrogates, private use, unassigned, line and paragraph separators.
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (zero-width or bidi)",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class UserNameError(UserError, ValueError):
    """A user name that cannot be stored (the message says which character and where)."""


def validate_user_name(
    name: object, *, what: str = "user", error: type[Exception] = UserNameError
) -> str:
    """``name`` NFC-normalised and stripped; raises ``error`` when it is not a usable name."""
    if isinstance(name, bytes | bytearray):
        raise error(f"{what} must be text, got bytes")
    if not isinstance(name, str):
        if name is None or isinstance(name, bool):
            raise error(f"{what} must be 1-{MAX_NAME} characters, got {name!r}")
        name = str(name)
    for i, ch in enumerate(name):  # before normalising: NFC must never see a lone surrogate
        category = unicodedata.category(ch)
        if category in REFUSED_CATEGORIES:
            raise error(
                f"{what} {name!a} contains {REFUSED_CATEGORIES[category]} "
                f"(U+{ord(ch):04X} at position {i + 1}); use visible characters only"
            )
    text = unicodedata.normalize("NFC", name).strip()
    if not text or len(text) > MAX_NAME:
        raise error(f"{what} must be 1-{MAX_NAME} characters, got {name!r}")
    return text


def neutralise_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula;
    carriage returns inside text become line feeds (the CSV writers used here quote a cell with
    a line feed but not one with a bare carriage return, which would split the row)."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_PREFIXES):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n") if "\r" in value else value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) cannot start a formula;
    numeric columns are left as numbers."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            out[col] = series.map(neutralise_cell)
    out.columns = [neutralise_cell(c) for c in out.columns]
    return out
