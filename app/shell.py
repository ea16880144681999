"""The page: a Bootstrap template with the survey picker, model versions, user name and tabs.

Building a session is cheap; the survey's data is loaded on the thread pool after the page has
loaded (``pn.state.onload``), and the views are (re)built whenever the survey changes.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from typing import Any

import panel as pn

from app import responsive
from app.auth import session_account
from app.data import SurveyData, survey_data
from app.safe import explain, has_pool, in_thread, log_failure
from app.state import TABS, AppState
from app.widgets import BrowserMemory
from backend.registry import ModelRegistry
from backend.survey import list_surveys

log = logging.getLogger(__name__)

TAB_TITLES = {
    "explore": "Explore",
    "similar": "Similar",
    "anomalies": "Anomalies",
    "label": "Label",
    "models": "Models & jobs",
    "collections": "Collections",
    "sky": "Sky",
}
HEADER = "#0b1a33"
CSS = """
.bk-tab { font-weight: 600; }
"""

ABOUT = """
**LatentSky** shows a galaxy survey through the eyes of deep models: a map of their latent
space, similarity search, anomaly ranking and labelling for active learning.

Labels and interest scores are stored under your name.
"""


def _view_builders() -> dict[str, Callable[[SurveyData, AppState], Any]]:
    from app.views.anomalies import AnomaliesView
    from app.views.collections import CollectionsView
    from app.views.explore import ExploreView
    from app.views.label import LabelView
    from app.views.models import ModelsView
    from app.views.similar import SimilarView
    from app.views.sky import SkyView

    return {
        "explore": lambda d, s: ExploreView(data=d, state=s),
        "similar": lambda d, s: SimilarView(data=d, state=s),
        "anomalies": lambda d, s: AnomaliesView(data=d, state=s),
        "label": lambda d, s: LabelView(data=d, state=s),
        "models": lambda d, s: ModelsView(data=d, state=s),
        "collections": lambda d, s: CollectionsView(data=d, state=s),
        "sky": lambda d, s: SkyView(data=d, state=s),
    }


UPDATE_CHECK_MS = 5000


def newer_versions(shown: dict[str, str], active: dict[str, str]) -> dict[str, tuple[str, str]]:
    """kind -> (shown, now active) for the kinds whose active version is not the one shown."""
    return {
        kind: (shown[kind], version)
        for kind, version in active.items()
        if kind in shown and shown[kind] != version
    }


def survey_summary(data: SurveyData) -> str:
    """Sidebar text: what the survey is and which model versions it is shown with."""
    meta = data.survey.meta
    _, h, w = meta.image_shape
    scale = f', {meta.pixel_scale:g}"/px' if meta.pixel_scale else ""
    lines = [
        f"<b>{len(data):,}</b> objects · bands <b>{html.escape(''.join(meta.bands))}</b> · "
        f"{h}×{w} px{scale}",
        f"source: {html.escape(meta.source)}",
    ]
    if meta.description:
        lines[1] += f"<div class='lss-dim'>{html.escape(meta.description[:500])}</div>"
    registry = ModelRegistry()
    active = registry.active_versions(data.name)
    if data.versions:
        rows = []
        for kind, version in data.versions.items():
            mark = "active" if active.get(kind) == version else "latest"
            rows.append(
                f"<tr><td>{kind}</td><td><code>{version}</code></td>"
                f"<td class='lss-dim'>{mark}</td></tr>"
            )
        lines.append(f"<table class='lss-models'>{''.join(rows)}</table>")
    else:
        lines.append("<div class='lss-dim'>no models yet</div>")
    return "<div class='lss-side'>" + "<br>".join(lines[:2]) + "".join(lines[2:]) + "</div>"


SIDE_CSS = """
.lss-side { font: 13px/1.5 system-ui, sans-serif; color: #1f2937; }
.lss-models { margin-top: 6px; border-collapse: collapse; }
.lss-models td { padding: 1px 8px 1px 0; }
.lss-dim { color: #6b7280; font-size: 12px; }
"""


class Shell:
    """One session's page."""

    def __init__(self) -> None:
        self._views_lock = threading.RLock()  # the loading thread and tab clicks build views
        self.state = AppState()
        self._seen_jobs: set[int] | None = None  # finished retrain/fine-tune jobs already told
        self.template = pn.template.BootstrapTemplate(
            title="LatentSky",
            header_background=HEADER,
            sidebar_width=290,
            raw_css=[CSS, responsive.CSS],
        )
        surveys = [m.name for m in list_surveys()]
        if not surveys:
            self.template.main.append(
                pn.pane.Alert(
                    "No surveys yet. Run `make run` (it prepares the demo survey) or "
                    "`python -m backend prepare --survey demo`.",
                    alert_type="warning",
                )
            )
            return
        default = "demo" if "demo" in surveys else surveys[0]
        self.state.survey = default
        self.picker = pn.widgets.Select(label="Survey", options=surveys, value=default)
        self.summary = pn.pane.HTML("", stylesheets=[SIDE_CSS], sizing_mode="stretch_width")
        self.user = pn.widgets.TextInput(
            label="Your name",
            placeholder="e.g. Vera Rubin",
            description="Labels and interest scores are stored under this name.",
        )
        self._memory = BrowserMemory()
        self.signed_in = pn.pane.HTML("", visible=False, sizing_mode="stretch_width")
        self._bind_user()
        self.tabs = pn.Tabs(dynamic=True, sizing_mode="stretch_width")  # render the tab shown
        self.status = pn.pane.Alert("", visible=False, sizing_mode="stretch_width")
        self._update_text = pn.pane.HTML("", sizing_mode="stretch_width")
        self._update_button = pn.widgets.Button(label="Show them", color="primary", width=120)
        self._update_button.on_click(lambda _: self._reload(self.state.survey))
        self.update_bar = pn.Row(
            self._update_text, self._update_button, visible=False, sizing_mode="stretch_width",
            styles={"background": "#e0f2fe", "border-radius": "6px", "padding": "2px 8px"},
        )  # fmt: skip
        self.loading = pn.indicators.LoadingSpinner(
            value=True, size=40, label="Loading the survey…", visible=True
        )
        self.template.sidebar.extend(
            [self.picker, self.summary, pn.layout.Divider(), self.user, self.signed_in,
             self._memory, responsive.SidebarFold(),
             pn.layout.Divider(), pn.pane.Markdown(ABOUT, styles={"font-size": "13px"})]
        )  # fmt: skip
        self.template.main.append(
            pn.Column(
                self.loading, self.status, self.update_bar, self.tabs, sizing_mode="stretch_width"
            )
        )
        self.picker.param.watch(lambda e: self._reload(e.new), "value")
        self.tabs.param.watch(self._tab_changed, "active")
        self.state.param.watch(self._tab_requested, "tab")
        pn.state.onload(lambda: self._load(default), threaded=has_pool())
        pn.state.onload(self._watch_versions)

    # -- user ------------------------------------------------------------------------------
    def _bind_user(self) -> None:
        login = pn.state.user if pn.state.user and pn.state.user != "guest" else None
        if login:  # labels carry the account: no name box
            self.user.param.update(value=str(login), disabled=True, visible=False)
            self.state.user = str(login)
            account = session_account()
            role = f" ({account.role})" if account is not None else ""
            self.signed_in.param.update(
                object=f"<div class='ls-signed-in'>Signed in as <b>{html.escape(str(login))}</b>"
                f"{role} · <a href='./logout'>log out</a></div>",
                visible=True,
            )
            return

        def from_input(event: Any) -> None:
            self.state.user = event.new.strip()
            if self._memory.value != event.new:
                self._memory.value = event.new

        def from_memory(event: Any) -> None:
            if event.new and self.user.value != event.new:
                self.user.value = event.new

        self.user.param.watch(from_input, "value")
        self._memory.param.watch(from_memory, "value")

    # -- tabs ------------------------------------------------------------------------------
    def _tab_changed(self, event: Any) -> None:
        if 0 <= event.new < len(TABS) and self.state.tab != TABS[event.new]:
            self.state.tab = TABS[event.new]
        self._ensure_view(TABS[event.new])

    def _tab_requested(self, event: Any) -> None:
        index = TABS.index(event.new)
        if self.tabs.active != index:
            self.tabs.active = index

    # -- new model versions ----------------------------------------------------------------
    def _watch_versions(self) -> None:
        pn.state.add_periodic_callback(self._check_versions, period=UPDATE_CHECK_MS)

    def _check_jobs(self, survey: str, announce: bool = True) -> None:
        """Tell the views (the Label view shows it) when a retrain or fine-tune of ``survey``
        finished without activating its version; ``announce=False`` only notes what finished."""
        from app.jobs import new_gate_news
        from backend.jobs.table import list_jobs

        try:
            jobs = list_jobs(survey, limit=10)
        except Exception:  # the poll must not break the page; the Models view shows errors
            log.exception("reading the jobs of %s failed", survey)
            return
        news, self._seen_jobs = new_gate_news(jobs, self._seen_jobs if announce else None)
        if news:
            self.state.retrain_news = news[-1]

    def _check_versions(self) -> None:
        """Offer to show new active versions (a retraining finished) without a page reload, and
        tell of retrainings that finished without activation."""
        data = getattr(self, "_data", None)
        if data is None or self.loading.visible:
            return
        self._check_jobs(data.name)
        newer = newer_versions(data.versions, ModelRegistry().active_versions(data.name))
        if not newer:
            self.update_bar.visible = False
            return
        what = ", ".join(
            f"{k} <code>{new}</code> (shown: {old})" for k, (old, new) in newer.items()
        )
        self._update_text.object = (
            f"<div style='font:13px system-ui;padding:8px 0'>New model version active: {what}. "
            "Maps, rankings and predictions can show it now.</div>"
        )
        self.update_bar.visible = True

    # -- loading ---------------------------------------------------------------------------
    def _reload(self, name: str) -> None:
        """Another survey: fresh shared state (the old views stop hearing anything), new views."""
        self.loading.visible = True
        self.update_bar.visible = False
        old = self.state
        self.state = AppState(survey=name, user=old.user, tab=old.tab)
        self.state.param.watch(self._tab_requested, "tab")
        in_thread(lambda: self._load(name))

    def _load(self, name: str) -> None:
        """Load ``name`` (thread pool) and build the tab shown; the others are built when
        first opened. Errors become a message."""
        try:
            data = survey_data(name)
            with self._views_lock:  # a tab opened meanwhile builds into these, not the old ones
                self._data = data
                self._built: dict[str, Any] = {}
                active = TABS.index(self.state.tab)
                self.tabs[:] = [(TAB_TITLES[k], self._placeholder()) for k in TABS]
                self.tabs.active = active
            self._check_jobs(name, announce=False)
            self._ensure_view(self.state.tab)
            self.summary.object = survey_summary(data)  # last: the page reads as loaded
            self.status.visible = False
            self.update_bar.visible = False
        except Exception as exc:
            log_failure(exc, "loading survey %s", name, logger=log)
            self.status.param.update(
                object=f"Cannot show survey {name!r}: {explain(exc)}",
                alert_type="danger",
                visible=True,
            )
        finally:
            self.loading.visible = False

    @staticmethod
    def _placeholder() -> pn.viewable.Viewable:
        return pn.indicators.LoadingSpinner(value=True, size=32, label="Loading…")

    def _ensure_view(self, key: str) -> None:
        """Build the view of tab ``key`` the first time it is shown."""
        with self._views_lock:
            data = getattr(self, "_data", None)
            if data is None or key in self._built:
                return
            built = self._built
            built[key] = None
        try:
            view: Any = _view_builders()[key](data, self.state)
        except Exception as exc:  # one broken view must not take the page down
            log_failure(exc, "building view %s", key, logger=log)
            view = pn.pane.Alert(explain(exc), alert_type="danger")
        with self._views_lock:
            if built is not self._built:  # another survey was loaded meanwhile
                return
            built[key] = view
            self.tabs[TABS.index(key)] = (TAB_TITLES[key], view)


def build() -> pn.template.BootstrapTemplate:
    """A new page for the current session."""
    return Shell().template
