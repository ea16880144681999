"""Label: a queue of galaxies to classify with number keys; every label is stored at once.

The view's state is its params (the object shown, the band, what the last action did, the
session's counts, the neighbours); its panes are ``param.depends`` methods over the pure
builders below, so the same view runs in a notebook, a test or the served app. Storing, undoing
and the retrain schedule are the backend's (``LabelStore``, ``maybe_schedule_retrain``).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from app.auth import require_session, restrict
from app.data import SurveyData
from app.labelling import (
    ActiveQueue,
    classifier_classes,
    label_store,
    make_queue,
    missing_classes,
    save_and_load_schema,
    schema_for,
)
from app.safe import guarded, heading, in_thread, message_pane, say
from app.state import AppState
from app.widgets import CutoutStage, KeyListener, ThumbGallery, kbd
from backend.active.acquisition import DEFAULT_STRATEGY, STRATEGIES
from backend.labels import LabelSchema
from backend.latent.errors import LatentError

STAGE_SIZE = 320
NEIGHBOURS = 8
LIST_FRONT = 500  # objects of a collection put in front of the queue at once
COLOUR = "colour"
CSS = """
.lsa-ack { font: 14px system-ui; color: #166534; }
.lsa-why { font: 13px system-ui; color: #334155; } .lsa-why span { color: #6b7280; }
.lsa-prog { font: 13px system-ui; color: #334155; }
.lsa-gate { font: 13px/1.45 system-ui; color: #713f12; background: #fef9c3;
  border: 1px solid #fde047; border-radius: 6px; padding: 8px 12px; margin: 4px 0; }
.lsa-gate code { color: #713f12; }
"""


def mismatch_html(missing: list[str], classes: list[str]) -> str:
    """The warning that the label buttons lack some of the active classifier's classes
    (HTML, escaped; empty when none is missing)."""
    if not missing:
        return ""
    return (
        "<div class='lsa-gate'>The active classifier's classes are "
        f"<b>{html.escape(', '.join(classes))}</b>; these buttons lack "
        f"<b>{html.escape(', '.join(missing))}</b>, so labels given here cannot teach or correct "
        "them. Use the classifier's classes for the buttons, or edit them below.</div>"
    )


HELP = """
**Label galaxies** for the classifier's next training round. The queue is chosen by active
learning: the objects whose labels should teach the active classifier most (an uncertainty
score, spread over the latent space so a batch is not ten near twins), or one per cluster of the
map before the first labels; objects that already have a label are skipped. *Queue by* chooses
the uncertainty score: margin (default), entropy, BALD, or random order. Press a **number key** (or click
a class), **space** to skip, **backspace** to undo your last label. Each label is stored the
moment you give it, under your name, and every few dozen new labels a retraining starts by
itself (*Models & jobs*). The band buttons and the nearest neighbours help with hard cases.
"""


# -- pure builders ----------------------------------------------------------------------------
def stage_content(
    index: int | None, object_id: str, url: str, prefetch: list[str]
) -> dict[str, Any]:
    """The big cutout's params for the object at row ``index`` (None: the queue is empty)."""
    if index is None:
        return {"url": "", "object_id": "", "prefetch": [], "caption": "Nothing left to label. 🎉"}
    return {
        "url": url,
        "object_id": object_id,
        "prefetch": prefetch,
        "caption": f"<code>{html.escape(object_id)}</code> · row {index:,}",
    }


def why_html(row: pd.Series | None, reason: str) -> str:
    """Why this object is asked: the classifier's guess and entropy, and the queue's order."""
    if row is None:
        return ""
    parts = []
    if "pred_class" in row.index:
        parts.append(
            f"classifier says <b>{html.escape(str(row['pred_class']))}</b> "
            f"(p = {float(row.get('pred_confidence', np.nan)):.2f})"
        )
    if "entropy" in row.index:
        parts.append(f"entropy {float(row['entropy']):.2f}")
    return (
        f"<div class='lsa-why'>{' · '.join(parts)}<br><span>queue: {html.escape(reason)}"
        "</span></div>"
    )


def progress_html(session: int, total: int, remaining: int) -> str:
    """The session's and the survey's label counts and what is left in the queue."""
    return (
        f"<div class='lsa-prog'><b>{session}</b> labelled by you this session · "
        f"<b>{total:,}</b> labelled objects in this survey · "
        f"<b>{remaining:,}</b> objects left in the queue</div>"
    )


def stored_html(object_id: str, value: str, colour: str, event: int, user: str) -> str:
    """The acknowledgement of a stored label (every user-given string escaped)."""
    return (
        f"<div class='lsa-ack'>✓ stored <code>{html.escape(object_id)}</code> → "
        f"<b style='color:{html.escape(colour)}'>{html.escape(value)}</b> (label #{event}, "
        f"{html.escape(user)})</div>"
    )


def skipped_html(object_id: str) -> str:
    return f"<div class='lsa-ack'>skipped <code>{html.escape(object_id)}</code></div>"


def undone_html(object_id: str | None, value: str = "") -> str:
    """The acknowledgement of an undo (``object_id`` None: there was nothing to undo)."""
    if object_id is None:
        return "<div class='lsa-ack'>nothing to undo</div>"
    return (
        f"<div class='lsa-ack'>↶ undid <code>{html.escape(object_id)}</code> → "
        f"{html.escape(value)}</div>"
    )


def gate_html(news: str) -> str:
    """A retrain that finished without activating its version, and why (HTML from the state)."""
    return f"<div class='lsa-gate' role='status'>{news}</div>" if news else ""


def neighbour_items(
    result: pd.DataFrame, known: dict[str, str], schema: LabelSchema, thumb: Callable[[int], str]
) -> list[dict[str, Any]]:
    """Gallery items of similarity results (``index``, ``object_id``, ``rank``, ``similarity``):
    rank, similarity to 3 decimals and, for labelled ones, the label in its class colour."""
    items = []
    for row in result.itertuples():
        i = int(row.index)
        label = known.get(str(row.object_id))
        sim = f"#{int(row.rank)} · sim {float(row.similarity):.3f}"
        sub = f"{sim} · labelled {label}" if label else sim
        colour = schema.by_name[label].colour if label in schema.by_name else None
        items.append(
            {"index": i, "id": str(row.object_id), "url": thumb(i), "caption": str(row.object_id),
             "sub": sub, "colour": colour}
        )  # fmt: skip
    return items


def key_bindings(schema: LabelSchema, may_label: bool) -> tuple[list[str], str]:
    """(keys listened to, their hint): class keys, space, backspace; a viewer only skips."""
    if not may_label:
        return [" "], f"{kbd('space')} skip"
    keys = [c.key for c in schema.classes if c.key]
    hint = (
        f"Keys: {kbd(keys[0])}–{kbd(keys[-1])} class · {kbd('space')} skip · {kbd('⌫')} undo"
        if keys else f"{kbd('space')} skip · {kbd('⌫')} undo"
    )  # fmt: skip
    return [*keys, " ", "Backspace"], hint


class LabelView(pn.viewable.Viewer):
    """Big cutout with band toggles, class buttons + keys, skip/undo, progress, neighbours."""

    data = param.ClassSelector(class_=SurveyData, doc="the survey labelled")
    state = param.ClassSelector(class_=AppState, doc="the session's shared state")
    band = param.Selector(
        default=COLOUR, objects=[COLOUR],
        doc="what the big cutout shows: the colour composite or one of the survey's bands",
    )  # fmt: skip
    strategy = param.Selector(
        default=DEFAULT_STRATEGY, objects=list(STRATEGIES),
        doc="how the active-learning queue picks what to label next from the active classifier: "
        "bald, entropy or margin (uncertainty, diversified) or random; a survey without "
        "embeddings has the simple queue (most uncertain first) whatever is chosen",
    )  # fmt: skip
    current = param.Integer(
        default=None, allow_None=True,
        doc="row index of the object to label now (None: nothing left in the queue)",
    )  # fmt: skip
    session_count = param.Integer(
        default=0, bounds=(0, None), doc="labels given in this view, less those undone"
    )
    labelled_total = param.Integer(
        default=0, bounds=(0, None), doc="objects of the survey with a current label (this task)"
    )
    remaining = param.Integer(default=0, bounds=(0, None), doc="objects left in the queue")
    described = param.Integer(
        default=None, allow_None=True,
        doc="the object the why text and the neighbours are of: ``current`` once the slower "
        "parts after an action are done (the picture is not held up for them)",
    )  # fmt: skip
    queue_reason = param.String(default="", doc="how the queue's order is chosen")
    last_action = param.String(
        default="", doc="what the last label, skip or undo did (HTML, escaped)"
    )
    neighbours = param.List(
        default=[], doc="the current object's nearest neighbours in latent space (gallery items)"
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self._notice = message_pane()
        self._lock = threading.RLock()
        self.param.band.objects = [COLOUR, *self.data.survey.bands]
        self.schema: LabelSchema = schema_for(self.data.name)
        current = label_store().current(self.data.name, task=self.schema.task)
        self._known = dict(
            zip(current["object_id"].astype(str), current["value"].astype(str), strict=True)
        )
        ids = self.data.memo("id_index", self.data.id_index)  # paged: look-ups, not the ids
        self._ids = ids
        self.queue = self._make_queue()
        self.strategy_choice = pn.widgets.Select.from_param(
            self.param.strategy, label="Queue by (active learning)", width=200,
            visible=isinstance(self.queue, ActiveQueue),  # the simple queue has one order
        )  # fmt: skip
        self.band_choice = pn.widgets.RadioButtonGroup.from_param(
            self.param.band, label="", color="light"
        )
        self._stage = CutoutStage(size=STAGE_SIZE)
        self._class_box = pn.FlexBox()
        self._skip = pn.widgets.Button(label="skip (space)", width=130)
        self._undo = pn.widgets.Button(label="undo (backspace)", width=150)
        self._skip.on_click(lambda _: in_thread(guarded(self._alert)(self.skip)))
        self._undo.on_click(lambda _: in_thread(guarded(self._alert)(self.undo)))
        self._keys = KeyListener()
        self._build_class_controls()
        self._classes_input = pn.widgets.TextInput(
            label="Classes, comma separated (keys 1, 2, ... in this order)",
            value=", ".join(self.schema.names), sizing_mode="stretch_width",
        )  # fmt: skip
        self._save_classes = pn.widgets.Button(label="Save classes", width=130)
        self._save_classes.on_click(
            lambda _: in_thread(guarded(self._alert)(lambda: self.set_classes(
                self._classes_input.value.split(",")
            )))
        )  # fmt: skip
        self._classifier_classes = classifier_classes(self.data.name)
        self._adopt = pn.widgets.Button(
            label="Use the classifier's classes", color="primary", width=230
        )
        self._adopt.on_click(
            lambda _: in_thread(guarded(self._alert)(
                lambda: self.set_classes(self._classifier_classes)
            ))
        )  # fmt: skip
        self._mismatch = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CSS])
        self._mismatch_box = pn.Column(self._mismatch, self._adopt, sizing_mode="stretch_width")
        self._show_mismatch()
        restrict("edit_schema", [self._classes_input, self._save_classes, self._adopt])
        if why := restrict("label", [self._undo]):
            say(self._notice, why, "info")
        self._keys.on_key(guarded(self._alert)(self._on_key))
        self._neighbours = ThumbGallery(
            items=self.param.neighbours, size=72, empty_text="", sizing_mode="stretch_width"
        )
        self._neighbours.on_action(guarded(self._alert)(self._neighbour_action))
        self._why = pn.pane.HTML(self.why_text, sizing_mode="stretch_width", stylesheets=[CSS])
        self._progress = pn.pane.HTML(
            self.progress_text, sizing_mode="stretch_width", stylesheets=[CSS]
        )
        self._ack = pn.pane.HTML(
            self.param.last_action, sizing_mode="stretch_width", min_height=28, stylesheets=[CSS]
        )
        self._gate_notice = pn.pane.HTML(
            self.gate_text, visible=self.gate_shown, sizing_mode="stretch_width",
            stylesheets=[CSS],
        )  # fmt: skip
        for index in reversed(self.state.label_list[:LIST_FRONT]):  # a collection to label
            self.queue.reopen(index)
        if self.state.label_from is not None:
            self.queue.reopen(self.state.label_from)
        self._advance()
        self._refresh_text()

    def _make_queue(self) -> Any:
        return make_queue(
            self.data.name, self.state.user_name, self.data.table, self._ids, set(self._known),
            strategy=self.strategy,
        )  # fmt: skip

    @param.depends("strategy", watch=True)
    def _on_strategy(self) -> None:
        """Another acquisition strategy: a new queue from it (labelled objects stay out)."""
        with self._lock:
            self.queue = self._make_queue()
            self._advance()
        self._after_change()

    def _build_class_controls(self) -> None:
        """Class buttons and key shortcuts from ``self.schema``."""
        buttons = []
        for cls in self.schema.classes:
            button = pn.widgets.Button(
                label=f"{cls.key} · {cls.name.replace('_', ' ')}" if cls.key else cls.name,
                width=170,
                stylesheets=[f":host .bk-btn {{ border-left: 8px solid {cls.colour}; }}"],
            )
            button.on_click(
                lambda _, v=cls.name: in_thread(guarded(self._alert)(lambda: self.give(v)))
            )
            buttons.append(button)
        self._buttons = buttons
        self._class_box.objects = buttons
        viewer = bool(restrict("label", buttons))  # a viewer: the keys only skip
        keys, hint = key_bindings(self.schema, may_label=not viewer)
        self._keys.param.update(keys=keys, hint=hint)

    def _show_mismatch(self) -> None:
        """Warn (with a one-click fix) while the buttons lack some of the classifier's classes."""
        missing = missing_classes(self.schema, self._classifier_classes)
        self._mismatch.object = mismatch_html(missing, self._classifier_classes)
        self._mismatch_box.visible = bool(missing)

    def set_classes(self, names: list[str]) -> None:
        """Make ``names`` this survey's classes (saved in the data root for every user)."""
        require_session("edit_schema")
        schema = save_and_load_schema(self.data.name, names)
        with self._lock:
            self.schema = schema
            self._build_class_controls()
            self._show_mismatch()
        self._classes_input.value = ", ".join(schema.names)
        stale = sorted(set(self._known.values()) - set(schema.names))
        note = (
            f" {sum(v in stale for v in self._known.values())} existing label(s) use classes "
            f"no longer listed ({', '.join(stale)}); they are kept in the store."
            if stale else ""
        )  # fmt: skip
        say(self._notice, f"Saved the classes of {self.data.name}: {', '.join(schema.names)}."
            + note, "success")  # fmt: skip
        self.state.labelled("")  # other views re-read the schema (colours of the labels)

    # -- actions -----------------------------------------------------------------------------
    def give(self, value: str) -> None:
        """Store ``value`` for the current object (committed), then show the next one."""
        require_session("label")
        with self._lock:
            index = self.current
            if index is None:
                return
            object_id = self.data.object_id(index)
            event = label_store().add(
                self.data.name, object_id, value, user=self.state.user_name,
                task=self.schema.task, source="ui", schema=self.schema,
            )  # fmt: skip
            self.queue.finish(index)
            self._known[object_id] = value
            colour = self.schema.by_name[value].colour
            ack = stored_html(object_id, value, colour, event, self.state.user_name)
            self._advance(session_count=self.session_count + 1, last_action=ack)
        self._after_change(object_id)

    def skip(self) -> None:
        """Pass over the current object (it comes back in a later session)."""
        with self._lock:
            if self.current is None:
                return
            skipped = self.data.object_id(self.current)
            self.queue.finish(self.current, skipped=True)
            self._advance(last_action=skipped_html(skipped))
        self._after_change()

    def undo(self) -> None:
        """Take back this user's last label in this survey and show that object again."""
        require_session("label")
        with self._lock:
            undone = label_store().undo_last(
                self.data.name, user=self.state.user_name, task=self.schema.task
            )
            if undone is None:
                self.last_action = undone_html(None)
                return
            object_id = str(undone["object_id"])
            self.queue.reopen(self.data.survey.index_of(object_id))
            self._known.pop(object_id, None)
            self._advance(
                session_count=max(0, self.session_count - 1),
                last_action=undone_html(object_id, str(undone["value"])),
            )
        self._after_change(object_id)

    def _on_key(self, key: str) -> None:
        if key == " ":
            in_thread(guarded(self._alert)(self.skip))
        elif key == "Backspace":
            in_thread(guarded(self._alert)(self.undo))
        else:
            for cls in self.schema.classes:
                if cls.key == key:
                    in_thread(guarded(self._alert)(lambda v=cls.name: self.give(v)))

    @param.depends("state.label_from", watch=True)
    def _on_request(self) -> None:
        """An object asked for elsewhere ("label it"): shown next."""
        if self.state.label_from is None:
            return
        with self._lock:
            self.queue.reopen(self.state.label_from)
            self._advance()
        self._after_change()

    @param.depends("state.label_list", watch=True)
    def _on_list(self) -> None:
        """Objects asked for in order (a collection): the first ``LIST_FRONT`` go in front."""
        with self._lock:
            for index in reversed(self.state.label_list[:LIST_FRONT]):
                self.queue.reopen(index)
            self._advance()
        self._after_change()

    @param.depends("state.retrain_news")
    def gate_text(self) -> str:
        """A retrain (every N labels, or asked for) that finished without activating its
        version, and why, beside the controls (no dialog: labelling goes on)."""
        return gate_html(self.state.retrain_news)

    @param.depends("state.retrain_news")
    def gate_shown(self) -> bool:
        return bool(self.state.retrain_news)

    def _neighbour_action(self, action: str, index: int) -> None:
        if action == "open":
            self.state.pick(index)

    # -- display -----------------------------------------------------------------------------
    def _advance(self, **changes: Any) -> None:
        """Show the queue's current object, with ``changes`` to other params in the same batch
        (the picture first: it is what the user waits for; not held, so that it goes out at
        once)."""
        self.param.update(current=self.queue.current(), **changes)

    def _url(self, index: int) -> str:
        band = None if self.band == COLOUR else self.band
        return self.data.thumb(index, 256, band)

    @param.depends("current", "band", watch=True)
    def _show_stage(self) -> None:
        index = self.current
        if index is None:
            self._stage.param.update(**stage_content(None, "", "", []))
            return
        prefetch = [self._url(i) for i in self.queue.upcoming(2)]
        content = stage_content(index, self.data.object_id(index), self._url(index), prefetch)
        self._stage.param.update(**content)

    @param.depends("described", "queue_reason")
    def why_text(self) -> str:
        """Why the object shown is asked (HTML)."""
        row = None if self.described is None else self.data.table.iloc[self.described]
        return why_html(row, self.queue_reason)

    @param.depends("session_count", "labelled_total", "remaining")
    def progress_text(self) -> str:
        return progress_html(self.session_count, self.labelled_total, self.remaining)

    def _maybe_retrain(self) -> None:
        """Every N new labels the backend queues a classifier retrain (``backend.active.loop``)."""
        from backend.config import retrain_every
        from backend.jobs.scheduling import maybe_schedule_retrain

        job = maybe_schedule_retrain(self.data.name, user=self.state.user_name)
        if job is not None:
            say(
                self._notice,
                f"{retrain_every()} new labels: retraining job #{job} queued; the queue "
                "follows the new classifier when it is ready (see Models & jobs).",
                "info",
            )

    def _refresh_text(self) -> None:
        """The queue's counts and reason, the survey's label count, why the object shown is
        asked and its neighbours, in one batch."""
        index = self.current
        items = self._neighbour_items(index)
        self.param.update(  # no hold(): it holds the whole page, the next picture too
            described=index,
            labelled_total=len(self._known),
            remaining=self.queue.remaining,
            queue_reason=self.queue.reason,
            neighbours=items,
        )

    def _after_change(self, labelled: str | None = None) -> None:
        """The slower parts after each action, once the next picture is on its way: text,
        neighbours, and telling the other views that ``labelled`` changed."""

        def work() -> None:
            self.queue.refill()
            self._refresh_text()
            if labelled:
                self.state.labelled(labelled)
                self._maybe_retrain()

        in_thread(guarded(self._alert)(work))

    def _neighbour_items(self, index: int | None) -> list[dict[str, Any]]:
        if index is None or not self.data.encoder:
            return []
        from backend.latent.service import latent_services

        try:
            result = (
                latent_services(self.data.name, self.data.encoder)
                .search()
                .by_object(index, NEIGHBOURS)
            )
        except (LatentError, FileNotFoundError):
            return []
        current = label_store().current(self.data.name)
        known = dict(
            zip(current["object_id"].astype(str), current["value"].astype(str), strict=False)
        )
        return neighbour_items(result, known, self.schema, lambda i: self.data.thumb(i, 72))

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        left = pn.Column(
            self.band_choice, self._stage, self._why, self.strategy_choice,
            width=STAGE_SIZE + 40, sizing_mode="fixed",
        )  # fmt: skip
        right = pn.Column(
            heading("Class"),
            self._mismatch_box,
            self._class_box,
            pn.Row(self._skip, self._undo),
            self._keys,
            self._ack,
            self._progress,
            self._notice,
            self._gate_notice,
            heading("Nearest neighbours in latent space"),
            self._neighbours,
            pn.Card(
                pn.Row(self._classes_input, self._save_classes, align="end"),
                title="Edit this survey's classes",
                collapsed=True,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            self._alert,
            pn.Row(left, right, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
