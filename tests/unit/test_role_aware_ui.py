"""The page offers only what the session's role may do: label and interest buttons are disabled
for viewers, retrain / fine-tune / activate / class edits below curator, cancel for a viewer (a
labeller picks only their own jobs), each with a tooltip naming the role needed. The callbacks'
server checks stay (``tests/unit/test_session_roles.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

import app.auth
import backend.auth.users
from app.data import load_survey_data
from app.state import AppState
from backend.auth.users import UserStore
from backend.jobs.table import insert_job
from backend.registry import ModelRegistry
from backend.survey import Survey

PASSWORD = "a long enough password"
ROLES = {"vera": "viewer", "lena": "labeller", "cora": "curator"}


@pytest.fixture
def team(tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch) -> Survey:
    monkeypatch.setenv("LATENTSKY_AUTH", "basic")
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # fast tests
    monkeypatch.setattr(backend.auth.users, "_hasher", cheap)
    for name, role in ROLES.items():
        UserStore().add(name, role, PASSWORD)
    return tiny_survey


def as_user(monkeypatch: pytest.MonkeyPatch, name: str) -> AppState:
    monkeypatch.setattr(app.auth, "session_login", lambda: name)
    return AppState(survey="tiny", user=name)


def offered(widget: Any) -> bool:
    return widget.visible and not widget.disabled


def tooltip(widget: Any) -> str:
    return str(widget.description or "")


@pytest.mark.parametrize("name", list(ROLES))
def test_label_view_offers_labels_from_labeller_and_class_edits_from_curator(
    team: Survey, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from app.views.label import LabelView

    view = LabelView(data=load_survey_data("tiny"), state=as_user(monkeypatch, name))
    role = ROLES[name]
    may_label, may_edit = role != "viewer", role == "curator"
    assert [offered(b) for b in view._buttons] == [may_label] * len(view._buttons)
    assert offered(view._undo) is may_label
    assert offered(view._skip)  # browsing the queue is for everyone
    assert offered(view._save_classes) is may_edit and offered(view._classes_input) is may_edit
    assert ("1" in view._keys.keys) is may_label
    if not may_label:
        assert "needs the role labeller" in tooltip(view._buttons[0])
        assert view._notice.visible and "vera (viewer)" in view._notice.object
    if not may_edit:
        assert "needs the role curator" in tooltip(view._save_classes)


@pytest.mark.parametrize("name", list(ROLES))
def test_interest_buttons_need_a_labeller(
    team: Survey, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from app.views.anomalies import AnomaliesView

    view = AnomaliesView(data=load_survey_data("tiny"), state=as_user(monkeypatch, name))
    may = ROLES[name] != "viewer"
    assert all(offered(b) is may for b in view._buttons)
    assert ("3" in view._keys.keys) is may
    if not may:
        assert "interest needs the role labeller" in tooltip(view._buttons[3])


@pytest.mark.parametrize("name", list(ROLES))
def test_jobs_and_activation_need_a_curator_and_cancel_follows_ownership(
    team: Survey, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from app.views.models import ModelsView

    ModelRegistry().save("classifier", {}, {"classes": ["a", "b"]}, survey="tiny")
    own = {who: insert_job("sleep", "tiny", {}, who) for who in ROLES}
    view = ModelsView(data=load_survey_data("tiny"), state=as_user(monkeypatch, name))
    role = ROLES[name]
    curator = role == "curator"
    assert offered(view.jobs.retrain) is curator and offered(view.jobs.finetune) is curator
    assert offered(view.activate) is curator
    if role == "viewer":
        assert not offered(view.jobs.cancel)
        assert "needs the role labeller" in tooltip(view.jobs.cancel)
    elif role == "labeller":
        assert offered(view.jobs.cancel) and view.jobs.cancel_id.options == [own["lena"]]
    else:
        assert offered(view.jobs.cancel) and sorted(view.jobs.cancel_id.options) == sorted(
            own.values()
        )
    if not curator:
        assert "needs the role curator" in tooltip(view.jobs.retrain)
        assert "activate needs the role curator" in tooltip(view.activate)
        assert view.jobs._alert.visible and f"{name} ({role})" in view.jobs._alert.object


def test_without_accounts_everything_is_offered(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.views.label import LabelView

    monkeypatch.setenv("LATENTSKY_AUTH", "none")
    view = LabelView(data=load_survey_data("tiny"), state=AppState(survey="tiny", user="ana"))
    assert all(offered(b) for b in view._buttons) and offered(view._save_classes)
    assert not view._notice.visible
