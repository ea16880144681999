"""The Collections tab and the Save-as-collection form, built in-process on the tiny survey:
save from a selection, reopen in order, export, label from it, delete by role; hostile names
and notes never reach the page as HTML."""

from __future__ import annotations

import io

import pytest
from argon2 import PasswordHasher
from astropy.table import Table

import app.auth
import backend.auth.users
from app.data import SurveyData, load_survey_data
from app.state import AppState
from app.views.collections import CollectionsView, SaveCollection
from backend import collections as store
from backend.auth.users import UserStore
from backend.survey import Survey

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_NOTE = "<script>alert('n')</script>\n**bold** [x](javascript:alert(1))"
RAW = ("<img", "<script", "javascript:alert(1))")  # what must never appear unescaped


@pytest.fixture
def data(tiny_survey: Survey) -> SurveyData:
    return load_survey_data("tiny")


def _page_text(view: CollectionsView) -> str:
    """Every HTML/Markdown string the view hands to the browser now."""
    import panel as pn

    layout = view.__panel__()
    texts = [str(p.object) for p in layout.select(pn.pane.HTML)]
    texts += [str(p.object) for p in layout.select(pn.pane.Markdown)]
    return "\n".join(texts)


def test_save_reopen_export_and_label_in_saved_order(data: SurveyData) -> None:
    state = AppState(survey="tiny", user="ana")
    shown = ["tiny-0042", "tiny-0007", "tiny-0099"]
    form = SaveCollection(ids=lambda: shown, data=data, state=state, kind="search")
    form.param.update(title="look-alikes", note="from tiny-0042")
    form.button.clicks += 1  # what a click does
    assert form.saved == "look-alikes" and form._alert.alert_type == "success"

    view = CollectionsView(data=data, state=state)
    assert view.param.collection.objects == ["look-alikes"] and view.collection == "look-alikes"
    SaveCollection(ids=lambda: ["tiny-0001"], data=data, state=state, title="later").save()
    state.tab = "collections"  # the tab shown again lists what was saved meanwhile
    assert view.param.collection.objects == ["later", "look-alikes"]
    view.collection = "look-alikes"
    assert [item["id"] for item in view._gallery.items] == shown
    assert view.rows().tolist() == [42, 7, 99]
    view.fmt = "VOTable"
    assert view._download.filename == "tiny-look-alikes.vot"
    back = Table.read(io.BytesIO(view._export_file().getvalue()), format="votable")
    assert [str(v) for v in back["object_id"]] == shown and list(back["rank"]) == [1, 2, 3]

    from app.views.label import LabelView

    before = LabelView(data=data, state=state)  # a Label tab already open
    view.label()
    assert state.tab == "label" and state.label_list == [42, 7, 99]
    assert before.queue.current() == 42 and before.current == 42
    label = LabelView(data=data, state=state)  # built after the request: the queue starts there
    order = []
    for _ in range(3):
        order.append(label.queue.current())
        label.queue.finish(order[-1])
    assert order == [42, 7, 99]


def test_hostile_name_and_note_are_escaped_everywhere(data: SurveyData) -> None:
    state = AppState(survey="tiny", user="<b>eve</b>")
    form = SaveCollection(ids=lambda: ["tiny-0001"], data=data, state=state)
    form.param.update(title=HOSTILE_NAME, note=HOSTILE_NOTE)
    form.save()
    assert not any(r in form._alert.object for r in RAW[:2])
    view = CollectionsView(data=data, state=state)
    page = _page_text(view)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;eve&lt;/b&gt;" in page
    assert not any(r in page for r in RAW[:2]) and "<b>eve" not in page
    assert store.get("tiny", HOSTILE_NAME).note == HOSTILE_NOTE  # stored as typed


def test_bad_input_is_one_message_not_a_save(data: SurveyData) -> None:
    state = AppState(survey="tiny", user="ana")
    form = SaveCollection(ids=lambda: ["tiny-0001", "ghost"], data=data, state=state)
    form.title = "with a ghost"
    form.button.clicks += 1
    assert form._alert.alert_type == "danger" and "unknown object id 'ghost'" in form._alert.object
    assert store.list_collections("tiny") == []


def test_roles_viewer_cannot_save_labeller_deletes_only_own(
    tiny_survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSKY_AUTH", "basic")
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(backend.auth.users, "_hasher", cheap)
    for name, role in {"vera": "viewer", "lena": "labeller", "lou": "labeller"}.items():
        UserStore().add(name, role, "a long enough password")
    data = load_survey_data("tiny")

    def session(name: str) -> AppState:
        monkeypatch.setattr(app.auth, "session_login", lambda: name)
        return AppState(survey="tiny", user=name)

    viewer = SaveCollection(ids=lambda: ["tiny-0001"], data=data, state=session("vera"))
    assert viewer.button.disabled and "needs the role labeller" in viewer.button.description
    SaveCollection(ids=lambda: ["tiny-0001"], data=data, state=session("lena"), title="L").save()
    other = CollectionsView(data=data, state=session("lou"))
    other._delete.clicks += 1
    assert other._alert.alert_type == "danger" and "curator" in other._alert.object
    assert [c.name for c in store.list_collections("tiny")] == ["L"]
    own = CollectionsView(data=data, state=session("lena"))
    own._delete.clicks += 1
    assert store.list_collections("tiny") == [] and own.collection is None


def test_a_map_selection_and_a_search_result_save_their_objects(data: SurveyData) -> None:
    import pandas as pd

    from app.selectionpanel import SelectionPanel
    from app.views.similar import SimilarView

    state = AppState(survey="tiny", user="ana")
    panel = SelectionPanel(lambda i: ("", None), lambda: None, data=data, state=state)
    panel.select([12, 3, 140], "lasso")
    panel._save.title = "lassoed"
    panel._save.save()
    similar = SimilarView(data=data, state=state)
    similar.found = pd.DataFrame(
        {"index": [8, 9], "object_id": ["tiny-0008", "tiny-0009"], "rank": [1, 2],
         "similarity": [0.9, 0.8]}
    )  # fmt: skip
    similar._save.title = "alike"
    similar._save.save()
    saved = {c.name: (c.kind, c.object_ids) for c in store.list_collections("tiny")}
    assert saved == {
        "lassoed": ("selection", ("tiny-0012", "tiny-0003", "tiny-0140")),
        "alike": ("search", ("tiny-0008", "tiny-0009")),
    }


def test_the_top_n_anomaly_candidates_save_in_rank_order(tiny_survey: Survey) -> None:
    import numpy as np

    from app import data as app_data
    from app.views.anomalies import AnomaliesView
    from backend.latent.service import clear_cache
    from tests.integration.test_notebook import _products

    _products(tiny_survey)  # a fake encoder's map, index and anomaly scores
    app_data.clear_cache()
    clear_cache()
    state = AppState(survey="tiny", user="ana")
    view = AnomaliesView(data=load_survey_data("tiny"), state=state)
    view._top_n.value = 5
    view._save.title = "top five"
    view._save.save()
    shown = view.candidates.page(0, 5)
    saved = store.get("tiny", "top five")
    assert saved.kind == "anomalies" and saved.object_ids == tuple(shown["object_id"])
    assert (np.diff(shown[view.scorer.value].to_numpy()) <= 0).all()  # best first


def test_actions_wait_for_a_collection(data: SurveyData) -> None:
    """With no collection saved, *Label these* and *Delete* were enabled (primary and danger
    colours) and only answered with an error; like Download and SAMP they now wait for one."""
    state = AppState(survey="tiny", user="ana")
    view = CollectionsView(data=data, state=state)
    actions = [view._label, view._delete, view._download, view._samp]
    assert view.collection is None and all(w.disabled for w in actions)
    SaveCollection(ids=lambda: ["tiny-0001"], data=data, state=state, title="one").save()
    state.tab = "collections"
    assert view.collection == "one" and not any(w.disabled for w in actions)
