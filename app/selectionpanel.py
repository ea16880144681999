"""The objects selected on the map: a paged thumbnail gallery, export and SAMP."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from app.data import SurveyData
from app.exporting import FORMATS, file_name, table_bytes
from app.ood import OOD, selection_note
from app.safe import clear, guarded, message_pane, say
from app.samp import SampUnavailable, send_table
from app.selection import ArrayRows, Rows
from app.state import AppState
from app.views.collections import SaveCollection
from app.widgets import ThumbGallery
from app.widgets.gallery import DETAILS_CLASS

PAGE = 48
Describe = Callable[[int], tuple[str, str | None]]  # index -> (caption line, border colour)


class SelectionPanel(pn.viewable.Viewer):
    """Shows ``select(indices, how)``; a click on a picture picks the object."""

    data = param.ClassSelector(class_=SurveyData)
    state = param.ClassSelector(class_=AppState)

    def __init__(self, describe: Describe, on_clear: Callable[[], None], **params: Any) -> None:
        super().__init__(**params)
        self._describe = describe
        self._on_clear = on_clear
        self._alert = message_pane()
        self._rows: Rows = ArrayRows(np.zeros(0, dtype=np.int64))
        self._count = 0
        self._page = 0
        self._how = ""
        self._text = pn.pane.Markdown("", margin=(0, 10))
        self._gallery = ThumbGallery(
            size=88,
            empty_text="Select objects with the box or lasso tool to see them here.",
            sizing_mode="stretch_width",
            reveal_new=True,  # a selection's gallery lies below the map
            reveal_on_open=DETAILS_CLASS,  # a click shows the details panel above it
        )
        self._gallery.on_action(guarded(self._alert)(self._clicked))
        self._prev = pn.widgets.Button(label="◀ previous", width=100, disabled=True)
        self._next = pn.widgets.Button(label="next ▶", width=100, disabled=True)
        self._clear = pn.widgets.Button(label="Clear selection", width=130, disabled=True)
        self._prev.on_click(guarded(self._alert)(lambda _: self._turn(-1)))
        self._next.on_click(guarded(self._alert)(lambda _: self._turn(1)))
        self._clear.on_click(guarded(self._alert)(lambda _: self._cleared()))
        self._fmt = pn.widgets.Select(options=list(FORMATS), value="CSV", width=100)
        self._download = pn.widgets.FileDownload(
            callback=guarded(self._alert)(self._export_file), filename="selection.csv",
            label="Download selection", color="success", width=190, disabled=True,
        )  # fmt: skip
        self._fmt.param.watch(lambda e: self._update_filename(), "value")
        self._samp = pn.widgets.Button(
            label="Send to TOPCAT / Aladin (SAMP)", width=240, disabled=True
        )
        self._samp.on_click(guarded(self._alert)(self._send_samp))
        self._samp_msg = message_pane()
        self._save = SaveCollection(
            ids=lambda: self.data.table["object_id"].to_numpy()[self.indices],
            data=self.data, state=self.state, kind="selection",
        )  # fmt: skip
        self.state.param.watch(guarded(self._alert)(self._from_sky), "selection")
        if self.state.selection is not None:  # made on the sky before this tab was opened
            self._from_sky()

    # -- selection ---------------------------------------------------------------------------
    @property
    def indices(self) -> np.ndarray:
        """Every selected row number (a tiled selection reads all its partitions)."""
        return self._rows.all_rows()

    def select(self, indices: np.ndarray | Rows, how: str = "") -> None:
        """Show ``indices`` (row numbers, or a :class:`~app.selection.Rows` paged lazily: only
        the page shown is listed); ``how``: "box", "lasso", "first" (no map) or "sky" (made in
        the Sky view). A selection made here ("box", "lasso", a clear) is shared through
        ``state.share_selection`` for the Sky view."""
        rows = indices if hasattr(indices, "rows") else ArrayRows(np.asarray(indices))
        if how not in ("first", "sky"):
            self.state.share_selection(rows, "explore")
        self._show(rows, how)

    def _from_sky(self, *_: object) -> None:
        """A selection made on the sky: shown here (the latent map's outline is cleared)."""
        if self.state.selection_from != "sky":
            return
        rows = self.state.selection
        self._show(rows if rows is not None else ArrayRows(np.zeros(0, np.int64)), "sky")
        self._on_clear()

    def _show(self, rows: Rows, how: str) -> None:
        self._rows, self._count = rows, int(rows.count())
        self._page, self._how = 0, how
        for widget in (self._download, self._samp, self._clear):
            widget.disabled = self._count == 0
        self._update_filename()
        self.refresh()

    def _cleared(self) -> None:
        self.select(np.zeros(0, dtype=np.int64))
        self._on_clear()

    def _turn(self, step: int) -> None:
        self._page = int(np.clip(self._page + step, 0, self._pages() - 1))
        self.refresh()

    def _pages(self) -> int:
        return max(1, -(-self._count // PAGE))

    def refresh(self) -> None:
        """Redraw the page (after a new selection, colouring or picked object)."""
        n, pages, lo = self._count, self._pages(), self._page * PAGE
        self._prev.disabled = self._page == 0
        self._next.disabled = self._page >= pages - 1
        shown = f"showing {lo + 1:,}–{min(lo + PAGE, n):,} (page {self._page + 1} of {pages})"
        if n and self._how == "first":
            self._text.object = f"**No map yet**: all {n:,} objects in survey order · {shown}"
        elif n:
            via = f" with the {self._how}" if self._how in ("box", "lasso") else ""
            via = " on the sky" if self._how == "sky" else via
            self._text.object = f"**{n:,} objects selected**{via} · {shown}" + self._ood_note()
        else:
            self._text.object = "**No selection.**"
        items = []
        page = self._rows.rows(lo, lo + PAGE)
        for i, object_id in zip(page.tolist(), self.data.object_ids(page), strict=True):
            sub, colour = self._describe(i)
            items.append(
                {"index": i, "id": object_id, "url": self.data.thumb(i, 88),
                 "sub": sub, "colour": colour, "current": i == self.state.picked}
            )  # fmt: skip
        self._gallery.items = items

    def _ood_note(self) -> str:
        """A warning when most of the selection is unlike the encoder's training data."""
        if self.data.ood is None or OOD not in self.data.table.columns:
            return ""
        return selection_note(self.data.table[OOD].to_numpy()[self.indices], self.data.ood)

    def _clicked(self, action: str, index: int) -> None:
        if action == "open":
            self.state.pick(index)

    # -- export ------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """Catalog, predictions and scores of the selected objects, with their row index."""
        idx = self.indices
        rows = self.data.table.iloc[idx].reset_index(drop=True)
        rows.insert(0, "index", idx)
        rows.insert(1, "map_x", self.data.x[idx] if self.data.has_map else np.nan)
        rows.insert(2, "map_y", self.data.y[idx] if self.data.has_map else np.nan)
        rows.attrs["survey"] = self.data.name
        return rows

    def _update_filename(self) -> None:
        stem = f"{self.data.name}-selection-{self._count}"
        self._download.filename = file_name(stem, self._fmt.value)

    def _export_file(self) -> io.BytesIO:
        return table_bytes(self.table(), self._fmt.value)

    def _send_samp(self, _: object) -> None:
        clear(self._samp_msg)
        try:
            text = send_table(self.table(), f"{self.data.name}-selection")
        except SampUnavailable as exc:
            say(self._samp_msg, f"Not sent: {exc}.", "warning")
            return
        say(self._samp_msg, text.capitalize() + ".", "success")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self._alert,
            pn.Row(self._text, self._prev, self._next, self._clear),
            self._gallery,
            pn.Row(self._fmt, self._download, self._samp),
            self._samp_msg,
            self._save,
            sizing_mode="stretch_width",
        )
