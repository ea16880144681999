"""Collections: save a selection, a search result or a top-N anomaly list under a name with a
note; reopen, export (CSV, FITS, VOTable, SAMP), label from or delete the team's collections.

:class:`SaveCollection` is the small form the Explore, Similar and Anomalies views put beside
what they show; :class:`CollectionsView` is the tab. The domain work (validation, roles,
storage) is :mod:`backend.collections`; every user-typed string (names, notes, owners, ids)
reaches the page escaped (:mod:`app.safe`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from app.auth import require_session, restrict
from app.data import SurveyData
from app.exporting import FORMATS, file_name, table_bytes
from app.safe import clear, guarded, h, heading, md, message_pane, say
from app.samp import SampUnavailable, send_table
from app.state import AppState
from app.widgets import ThumbGallery
from backend import collections as store

GALLERY = 96
HELP = """
**Collections** are named lists of objects shared with everyone working on this survey: save
one from a map selection (*Explore*), a search result (*Similar*) or the top of the anomaly list
(*Anomalies*). Reopen one here to look at it again, export it, send it to TOPCAT / Aladin, or
put its objects at the front of your *Label* queue. Labellers save; a collection's owner or a
curator deletes it.
"""


class SaveCollection(pn.viewable.Viewer):
    """Name + note + *Save as collection*: stores what ``ids()`` returns under ``kind``."""

    data = param.ClassSelector(class_=SurveyData)
    state = param.ClassSelector(class_=AppState)
    title = param.String(default="", doc="the collection's name (unique in the survey)")
    note = param.String(default="", doc="a note for the team: what these objects are")
    kind = param.Selector(default="selection", objects=list(store.KINDS))
    saved = param.String(default="", doc="name of the latest collection saved from here")

    def __init__(self, ids: Callable[[], Iterable[str]], **params: Any) -> None:
        super().__init__(**params)
        self._ids = ids
        self._alert = message_pane()
        self._title = pn.widgets.TextInput.from_param(
            self.param.title, label="Collection name", placeholder="e.g. candidate trails"
        )
        self._note = pn.widgets.TextAreaInput.from_param(
            self.param.note, label="Note", placeholder="what these are", height=60
        )
        self.button = pn.widgets.Button(label="Save as collection", color="primary")
        self.button.on_click(guarded(self._alert)(lambda _: self.save()))
        restrict("save_collection", [self.button])

    def save(self) -> store.Collection:
        """Save the objects shown now (one clear message when refused)."""
        clear(self._alert)
        account = require_session("save_collection")
        made = store.create(
            self.data.survey, self.title, self._ids(), by=account,
            user=self.state.user_name, note=self.note, kind=self.kind,
        )  # fmt: skip
        self.saved = made.name
        say(
            self._alert,
            f"Saved collection **{md(made.name)}** ({made.size:,} objects); reopen it in "
            "*Collections*.",
            "success",
        )
        return made

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Card(
            pn.FlexBox(self._title, self._note, self.button),
            self._alert,
            title="Save as collection",
            collapsed=True,
            sizing_mode="stretch_width",
        )


def listing_html(found: list[store.Collection]) -> str:
    """The survey's collections as an HTML table, every user-typed cell escaped."""
    if not found:
        return "<p style='font:13px system-ui;color:#475569'>No collections saved yet.</p>"
    rows = "".join(
        f"<tr><td>{h(c.name)}</td><td>{h(c.kind)}</td><td style='text-align:right'>"
        f"{c.size:,}</td><td>{h(c.owner)}</td><td>{c.created:%Y-%m-%d %H:%M}</td>"
        f"<td>{h(c.note.split(chr(10), 1)[0][:80])}</td></tr>"
        for c in found
    )
    return (
        "<table class='lss-collections' style='font:13px system-ui;border-collapse:collapse'>"
        "<tr><th>name</th><th>kind</th><th>objects</th><th>owner</th><th>saved</th>"
        f"<th>note</th></tr>{rows}</table>"
    )


def detail_html(c: store.Collection | None) -> str:
    """One collection's header and note (escaped; the note's line breaks kept)."""
    if c is None:
        return ""
    note = "<br>".join(h(line) for line in c.note.split("\n")) if c.note else "<i>no note</i>"
    return (
        f"<div style='font:14px system-ui'><b>{h(c.name)}</b> · {h(c.kind)} · "
        f"{c.size:,} objects · saved by {h(c.owner)} on {c.created:%Y-%m-%d %H:%M}</div>"
        f"<div style='font:13px system-ui;color:#334155;margin-top:4px'>{note}</div>"
    )


class CollectionsView(pn.viewable.Viewer):
    """The survey's collections: list, open one (gallery), export, SAMP, label, delete."""

    data = param.ClassSelector(class_=SurveyData)
    state = param.ClassSelector(class_=AppState)
    collection = param.Selector(default=None, objects=[], doc="name of the collection shown")
    fmt = param.Selector(default="CSV", objects=list(FORMATS), doc="export format")
    found = param.List(default=[], item_type=store.Collection, doc="the survey's collections")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self._samp_msg = message_pane()
        self._pick = pn.widgets.Select.from_param(self.param.collection, label="Collection")
        self._fmt = pn.widgets.Select.from_param(self.param.fmt, label="Format", width=100)
        self._refresh = pn.widgets.Button(label="↻ refresh", width=100)
        self._download = pn.widgets.FileDownload(
            callback=guarded(self._alert)(self._export_file), filename="collection.csv",
            label="Download", color="success", width=140,
        )  # fmt: skip
        self._samp = pn.widgets.Button(label="Send to TOPCAT / Aladin (SAMP)", width=240)
        self._label = pn.widgets.Button(label="Label these", color="primary", width=130)
        self._delete = pn.widgets.Button(label="Delete", color="danger", width=100)
        self._gallery = ThumbGallery(
            size=88, empty_text="Pick a collection to see its objects.",
            sizing_mode="stretch_width",
        )  # fmt: skip
        self._refresh.on_click(guarded(self._alert)(lambda _: self.reload()))
        self._samp.on_click(guarded(self._alert)(lambda _: self.send_samp()))
        self._label.on_click(guarded(self._alert)(lambda _: self.label()))
        self._delete.on_click(guarded(self._alert)(lambda _: self.delete()))
        self._gallery.on_action(guarded(self._alert)(self._clicked))
        self._refused = {  # buttons the session's role disables for good
            w for w, action in ((self._label, "label"), (self._delete, "save_collection"))
            if restrict(action, [w])
        }  # fmt: skip
        self.state.param.watch(guarded(self._alert)(self._on_tab), "tab")
        self.reload()

    # -- state ------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the survey's collections again (others may have saved or deleted some)."""
        found = store.list_collections(self.data.name)
        names = [c.name for c in found]
        keep = self.collection if self.collection in names else (names[0] if names else None)
        with param.parameterized.batch_call_watchers(self):
            self.param.collection.objects = names
            self.found = found
            self.collection = keep
        self.param.trigger("collection")

    def _on_tab(self, event: param.parameterized.Event) -> None:
        if event.new == "collections":  # saved from another tab since: list it
            self.reload()

    @property
    def current(self) -> store.Collection | None:
        return next((c for c in self.found if c.name == self.collection), None)

    def rows(self) -> np.ndarray:
        """Row numbers of the collection shown, in its saved order."""
        c = self.current
        return np.zeros(0, dtype=np.int64) if c is None else store.rows_of(self.data.survey, c)

    @param.depends("collection", "found", watch=True)
    def _show(self) -> None:
        rows = self.rows()[:GALLERY]
        self._gallery.items = [
            {"index": int(i), "id": self.data.object_id(int(i)), "url": self.data.thumb(int(i), 88),
             "sub": f"#{k + 1}", "current": int(i) == self.state.picked}
            for k, i in enumerate(rows.tolist())
        ]  # fmt: skip
        name = self.collection or "collection"
        self._download.filename = file_name(f"{self.data.name}-{name}", self.fmt)
        for w in (self._download, self._samp, self._label, self._delete):
            w.disabled = self.current is None or w in self._refused  # nothing to act on yet

    @param.depends("fmt", watch=True)
    def _rename(self) -> None:
        self._download.filename = file_name(
            f"{self.data.name}-{self.collection or 'collection'}", self.fmt
        )

    # -- actions ----------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """Catalog, predictions and scores of the collection's objects, in the saved order."""
        idx = self.rows()
        rows = self.data.table.iloc[idx].reset_index(drop=True)
        rows.insert(0, "rank", np.arange(1, len(idx) + 1))
        rows.insert(1, "index", idx)
        rows.attrs["survey"] = self.data.name
        return rows

    def _export_file(self) -> io.BytesIO:
        if self.current is None:
            raise store.CollectionError("pick a collection to export")
        return table_bytes(self.table(), self.fmt)

    def send_samp(self) -> None:
        clear(self._samp_msg)
        try:
            text = send_table(self.table(), f"{self.data.name}-{self.collection}")
        except SampUnavailable as exc:
            say(self._samp_msg, f"Not sent: {exc}.", "warning")
            return
        say(self._samp_msg, text.capitalize() + ".", "success")

    def label(self) -> None:
        """Put the collection's objects at the front of this user's Label queue, in order."""
        require_session("label")
        rows = self.rows()
        if not len(rows):
            raise store.CollectionError("pick a collection with objects to label")
        self.state.ask_label_list([int(i) for i in rows])

    def delete(self) -> None:
        account = require_session("save_collection")
        if self.collection is None:
            raise store.CollectionError("pick a collection to delete")
        name = self.collection
        store.delete(self.data.name, name, by=account, user=self.state.user_name)
        self.reload()
        say(self._alert, f"Deleted collection **{md(name)}**.", "info")

    def _clicked(self, action: str, index: int) -> None:
        if action == "open":
            self.state.pick(index)

    # -- layout -----------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            self._alert,
            heading("Saved in this survey"),
            pn.pane.HTML(pn.bind(listing_html, self.param.found), sizing_mode="stretch_width"),
            pn.FlexBox(self._pick, self._refresh, self._label, self._delete),
            pn.pane.HTML(
                pn.bind(
                    lambda *_: detail_html(self.current), self.param.collection, self.param.found
                ),
                sizing_mode="stretch_width",
            ),
            self._gallery,
            pn.FlexBox(self._fmt, self._download, self._samp),
            self._samp_msg,
            sizing_mode="stretch_width",
        )
