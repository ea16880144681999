"""A browser opens every place hostile text is shown (names, labels, class names, survey
description posted without logging in) and no script of theirs ever runs: no dialog opens."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from backend.survey import SurveyWriter
from tests.conftest import make_blobs
from tests.ui.pages import open_tab

pytestmark = pytest.mark.ui

USERS = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]
CLASSES = ["<img src=y onerror=alert(3)>", "<svg/onload=alert(4)>"]
DESCRIPTION = "<script>alert(5)</script><img src=z onerror=alert(6)>"


def post(url: str, body: dict) -> int:
    request = urllib.request.Request(
        url + "/api/labels", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def test_hostile_text_never_runs_in_the_browser(
    home: Path, serve_app: callable, page: object
) -> None:
    ids = [f"evil-{i}" for i in range(8)]
    with SurveyWriter("evil", ["g", "r", "i"], (16, 16), "test", description=DESCRIPTION) as w:
        w.append(make_blobs(8), pd.DataFrame({"object_id": ids}))
    schema = {"task": "class", "classes": [{"name": c, "key": str(k + 1)}
                                           for k, c in enumerate(CLASSES)]}  # fmt: skip
    (home / "label_schemas").mkdir(parents=True)
    (home / "label_schemas" / "evil.yaml").write_text(yaml.safe_dump(schema))
    url = serve_app()
    for n, user in enumerate(USERS):  # posted without logging in
        for i, oid in enumerate(ids):
            body = {"survey": "evil", "object_id": oid, "value": CLASSES[(i + n) % 2], "user": user}
            assert post(url, body) == 201
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url + "/main", wait_until="networkidle")
    page.get_by_text(DESCRIPTION).first.wait_for(timeout=30_000)  # the sidebar, as text
    open_tab(page, "Models & jobs")
    page.get_by_text("Krippendorff").first.wait_for(timeout=30_000)
    page.get_by_text(f"{USERS[1]} · {USERS[0]}").first.wait_for(timeout=10_000)  # names as text
    open_tab(page, "Label")
    page.get_by_text(CLASSES[0]).first.wait_for(timeout=30_000)  # class buttons, as text
    time.sleep(2)  # an injected onerror/onload would have fired by now
    assert dialogs == []
    assert page.locator("img[src='x'], img[src='y'], img[src='z']").count() == 0
