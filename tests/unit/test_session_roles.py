"""Roles in Panel callbacks: the Label view, interest scores, jobs and activation check the
session's account on the server (``app.auth.require_session``), whatever the page shows."""

from __future__ import annotations

import pytest

import app.auth
from app.data import load_survey_data
from app.state import AppState
from backend.auth.roles import AccessDenied, Account, require_cancel
from backend.auth.users import UserStore
from backend.survey import Survey

PASSWORD = "a long enough password"


@pytest.fixture
def team(tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch) -> Survey:
    monkeypatch.setenv("LATENTSKY_AUTH", "basic")
    for name, role in [("vera", "viewer"), ("lena", "labeller"), ("cora", "curator")]:
        UserStore().add(name, role, PASSWORD)
    return tiny_survey


def as_user(monkeypatch: pytest.MonkeyPatch, name: str | None) -> None:
    monkeypatch.setattr(app.auth, "session_login", lambda: name)


def label_view(user: str):
    from app.views.label import LabelView

    return LabelView(data=load_survey_data("tiny"), state=AppState(survey="tiny", user=user))


def test_a_viewer_cannot_label_undo_or_edit_classes(
    team: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.labelling import label_store

    as_user(monkeypatch, "vera")
    view = label_view("vera")
    with pytest.raises(AccessDenied, match="vera is a viewer"):
        view.give(view.schema.names[0])
    with pytest.raises(AccessDenied):
        view.undo()
    with pytest.raises(AccessDenied, match="curator"):
        view.set_classes(["star", "galaxy"])
    assert label_store().events("tiny").empty
    as_user(monkeypatch, "lena")
    view = label_view("lena")
    view.give(view.schema.names[0])
    assert label_store().events("tiny")["user"].tolist() == ["lena"]
    with pytest.raises(AccessDenied, match="curator"):
        view.set_classes(["star", "galaxy"])


def test_nobody_logged_in_is_refused_and_no_auth_allows_all(
    team: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_user(monkeypatch, None)
    with pytest.raises(AccessDenied) as refused:
        app.auth.require_session("browse")
    assert refused.value.status == 401
    monkeypatch.setenv("LATENTSKY_AUTH", "none")
    assert app.auth.require_session("activate").role == "admin"


def test_job_cancel_own_with_labeller_others_with_curator() -> None:
    lena, cora = Account("lena", "labeller"), Account("cora", "curator")
    assert require_cancel(lena, "lena") == lena
    with pytest.raises(AccessDenied, match="curator"):
        require_cancel(lena, "cora")
    assert require_cancel(cora, "lena") == cora
    with pytest.raises(AccessDenied, match="labeller"):
        require_cancel(Account("vera", "viewer"), "vera")


def test_the_session_checks_are_in_the_callbacks(
    team: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interest scores, job buttons and activation refuse a viewer before they do anything
    (the objects are bare: a callback that skipped the check would fail otherwise)."""
    from app.jobs import JobsPanel
    from app.views.anomalies import AnomaliesView
    from app.views.models import ModelsView
    from app.views.similar import SimilarView

    as_user(monkeypatch, "vera")
    for cls, method, args, needs in [
        (AnomaliesView, "give", (3,), "labeller"),
        (JobsPanel, "submit", (), "curator"),
        (JobsPanel, "cancel_job", (), "labeller"),
        (ModelsView, "activate_picked", (), "curator"),
    ]:
        with pytest.raises(AccessDenied, match=f"needs the role {needs}"):
            getattr(cls, method)(object.__new__(cls), *args)
    as_user(monkeypatch, "mallory")  # removed since the page was opened
    with pytest.raises(AccessDenied, match="log in"):
        SimilarView.search(object.__new__(SimilarView))
