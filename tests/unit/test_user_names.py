"""User names (labels, votes, API) checked by one shared rule; survey names anchored at both ends."""

from __future__ import annotations

import unicodedata

import pandas as pd
import pytest

from backend.labels import LabelError, LabelStore
from backend.survey import Survey, SurveyError, validate_survey_name
from backend.usertext import UserNameError, validate_user_name

HIDDEN = [
    "ana\u200b\u202e",  # zero-width space + right-to-left override: looks like "ana"
    "ana\u200d",  # zero-width joiner
    "ana\u2066x\u2069",  # bidi isolate
    "\ufeffana",  # BOM
    "an\x00a",  # NUL
    "ana\x1b[31m",  # escape sequence
    "ana\nbob",  # newline
    "ana\ud800",  # lone surrogate
    "ana\ue000",  # private use
    "ana\u2028",  # line separator
]


@pytest.mark.parametrize("name", HIDDEN)
def test_hidden_characters_are_refused_naming_the_code_point(name: str) -> None:
    with pytest.raises(UserNameError, match=r"U\+[0-9A-F]{4}"):
        validate_user_name(name)


def test_names_are_nfc_normalised_and_stripped() -> None:
    decomposed = unicodedata.normalize("NFD", "  Zoë Müller ")
    assert decomposed != "Zoë Müller"
    assert validate_user_name(decomposed) == "Zoë Müller"
    assert validate_user_name("Vera Rubin") == "Vera Rubin"
    assert validate_user_name("<script>alert(1)</script>") == "<script>alert(1)</script>"  # text
    for bad in ("", "   ", None, "x" * 257, b"ana"):
        with pytest.raises(UserNameError):
            validate_user_name(bad)


@pytest.mark.parametrize("name", ["ana\u200b\u202e", "an\x00a", "ana\ud800"])
def test_label_store_refuses_hidden_names_and_writes_nothing(
    tiny_survey: Survey, name: str
) -> None:
    store = LabelStore()
    with pytest.raises(LabelError, match="U\\+"):
        store.add("tiny", "tiny-0001", "merger", user=name)
    rows = pd.DataFrame({"survey": ["tiny"] * 2, "object_id": ["tiny-0001", "tiny-0002"],
                         "value": ["merger", "spiral"], "user": ["bob", name]}, dtype=object)  # fmt: skip
    with pytest.raises(LabelError, match="row 2"):
        store.add_many(rows, source="import")
    assert store.events("tiny").empty


def test_label_store_stores_the_normalised_name(tiny_survey: Survey) -> None:
    store = LabelStore()
    store.add("tiny", "tiny-0001", "merger", user=unicodedata.normalize("NFD", "Zoë"))
    store.add("tiny", "tiny-0002", "merger", user="Zoë")
    assert store.current("tiny")["user"].tolist() == ["Zoë", "Zoë"]


def test_vote_sources_follow_the_same_rule(tiny_survey: Survey) -> None:
    fractions = pd.DataFrame({"object_id": ["tiny-0001"], "merger": [0.7], "spiral": [0.3]})
    with pytest.raises(LabelError, match="U\\+200B"):
        LabelStore().import_votes("tiny", fractions, source="gz\u200b")
    assert LabelStore().votes("tiny").empty


@pytest.mark.parametrize("name", ["demo\n", "demo\r\n", "\ndemo", "de\nmo"])
def test_survey_names_are_anchored_at_both_ends(name: str) -> None:
    with pytest.raises(SurveyError):
        validate_survey_name(name)
    assert validate_survey_name("demo") == "demo"
