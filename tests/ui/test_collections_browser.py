"""The Collections tab in a browser: a collection with a hostile name, note and owner is listed
and opened as text (no script of theirs runs), and *Label these* opens the Label tab on its
first object."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from backend import collections
from backend.auth.roles import Account
from backend.survey import Survey, SurveyWriter
from tests.conftest import make_blobs
from tests.ui.pages import open_tab

pytestmark = pytest.mark.ui

NAME = "<img src=x onerror=alert(1)>"
NOTE = "<script>alert(2)</script>\n<svg/onload=alert(3)>"
OWNER = "<img src=y onerror=alert(4)>"


def test_a_hostile_collection_is_text_and_labels_from_its_first_object(
    home: Path, serve_app: callable, page: object
) -> None:
    ids = [f"c-{i}" for i in range(12)]
    with SurveyWriter("coll", ["g", "r", "i"], (16, 16), "test") as w:
        w.append(make_blobs(12), pd.DataFrame({"object_id": ids}))
    chosen = ["c-9", "c-4", "c-7"]
    collections.create(
        Survey.open("coll"), NAME, chosen, by=Account(None, "labeller"), user=OWNER, note=NOTE
    )
    url = serve_app()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url + "/main", wait_until="networkidle")
    page.get_by_text("source: test").first.wait_for(timeout=30_000)  # the survey is loaded
    open_tab(page, "Collections")
    page.get_by_text(f"saved by {OWNER}").first.wait_for(timeout=30_000)  # header, as text
    page.get_by_text("<script>alert(2)</script>").first.wait_for(timeout=10_000)  # the note
    assert page.locator(".lsg-cap").all_inner_texts()[:3] == chosen  # the gallery, in order
    page.get_by_role("button", name="Label these").click()
    page.get_by_text("c-9", exact=True).first.wait_for(timeout=30_000)  # Label shows it first
    time.sleep(2)  # an injected onerror/onload would have fired by now
    assert dialogs == []
    assert page.locator("img[src='x'], img[src='y'], svg[onload]").count() == 0
