"""Similar: find objects that look alike, by object, id, sky position or an uploaded cutout."""

from __future__ import annotations

import html
import io
import threading
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from app import plots
from app.auth import require_session
from app.data import SurveyData
from app.exporting import FORMATS, file_name, table_bytes
from app.mapview import ServerMap, home_view
from app.safe import clear, guarded, heading, in_thread, message_pane, say
from app.state import AppState
from app.uploads import ACCEPT, ood_note, preview_uri, read_upload
from app.views.collections import SaveCollection
from app.widgets import ThumbGallery
from backend.latent.errors import LatentError
from backend.latent.images import check_embeddings

MODES = ["Picked object", "Object id", "Sky position", "Image file"]
HELP = """
**Find look-alikes** in the encoder's latent space (cosine similarity of embeddings). Search
from the object picked on the map, an object id (or `#123` for row 123), a sky position
(`150.1 2.2` in degrees or `10:00:24 +02:12:00`) or your own cutout (FITS with the survey's
bands, PNG for RGB surveys, or `.npy`). **Click** a result to search from it; mark results
**+ like** / **- unlike** and *Refine* to steer the search (Rocchio feedback).
"""


def _typed(field: pn.widgets.TextInput) -> str:
    """What is in a text field now (``value_input`` follows each key; ``value`` waits for
    Enter or leaving the field)."""
    return (field.value_input or field.value or "").strip()


class SimilarView(pn.viewable.Viewer):
    """Query controls, results gallery with +/- marks, and the results on the map."""

    data = param.ClassSelector(class_=SurveyData)
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self.mode = pn.widgets.RadioButtonGroup(
            options=MODES, value=MODES[0], button_type="light", sizing_mode="stretch_width"
        )
        self.object_id = pn.widgets.TextInput(
            name="Object id", placeholder=f"{self._example_id()}  or  #42 for row 42"
        )
        self.position = pn.widgets.TextInput(
            name="RA Dec", placeholder="150.1 2.2   or   10:00:24 +02:12:00"
        )
        self.radius = pn.widgets.FloatInput(name="Match radius (arcsec)", value=5.0, start=0.1)
        self.upload = pn.widgets.FileInput(accept=ACCEPT, multiple=False)
        self.fill = pn.widgets.Checkbox(name="replace NaN/inf pixels by 0", value=False)
        self.k = pn.widgets.Select(name="Results", options=[12, 24, 48, 96], value=24)
        self.search_button = pn.widgets.Button(name="Search", button_type="primary")
        self.refine_button = pn.widgets.Button(
            name="Refine with +/- marks", button_type="default", disabled=True
        )
        self._query_html = pn.pane.HTML("", sizing_mode="stretch_width")
        self._gallery = ThumbGallery(
            size=96,
            actions=["pos", "neg"],
            empty_text="Results appear here.",
            sizing_mode="stretch_width",
        )
        self._results: pd.DataFrame | None = None
        self._query_index: int | None = None
        self._query_xy: np.ndarray = np.zeros((0, 2))
        self._marks: dict[int, str] = {}
        self._marks_lock = threading.Lock()
        self._fmt = pn.widgets.Select(options=list(FORMATS), value="CSV", width=100)
        self._download = pn.widgets.FileDownload(
            callback=guarded(self._alert)(self._export_file), filename="similar.csv",
            label="Download results", button_type="success", width=180, disabled=True,
        )  # fmt: skip
        self._fmt.param.watch(lambda e: self._update_filename(), "value")
        self._save = SaveCollection(
            ids=lambda: [] if self._results is None else self._results["object_id"].tolist(),
            data=self.data, state=self.state, kind="search",
        )  # fmt: skip
        self._results_pipe = hv.streams.Pipe(data=np.zeros((0, 2)))
        self._query_pipe = hv.streams.Pipe(data=np.zeros((0, 2)))
        self._map = pn.pane.HoloViews(self._build_map(), sizing_mode="stretch_width")

        self.search_button.on_click(lambda _: in_thread(guarded(self._alert)(self.search)))
        for field in (self.object_id, self.position):  # Enter in a field searches
            field.param.watch(
                lambda _: in_thread(guarded(self._alert)(self.search)), "enter_pressed"
            )
        self.refine_button.on_click(lambda _: in_thread(guarded(self._alert)(self.refine)))
        self._gallery.on_action(guarded(self._alert)(self._gallery_action))
        self.state.param.watch(guarded(self._alert)(self._on_request), "similar_from")
        if not self.data.encoder:
            say(self._alert, " ".join(self.data.problems), "warning")
        elif self.state.similar_from is not None:
            self._on_request()

    def _example_id(self) -> str:
        return self.data.object_id(0) if len(self.data) else "object-id"

    # -- map ---------------------------------------------------------------------------------
    def _build_map(self) -> hv.DynamicMap | None:
        if not self.data.has_map:
            return None
        points = plots.map_points(self.data.x, self.data.y)
        style = plots.MapStyle(
            "count", cmap="gray", height=420, colorbar=False,
            title="results (orange) and query (white) on the map",
        )  # fmt: skip
        home = self.data.memo("home", lambda: home_view(self.data.x, self.data.y))
        self._server_map = ServerMap(points, style, *home)
        base = self._server_map.dmap
        results = hv.DynamicMap(
            lambda data: plots.marker_overlay(data[:, 0], data[:, 1], size=8),
            streams=[self._results_pipe],
        )
        query = hv.DynamicMap(
            lambda data: plots.marker_overlay(
                data[:, 0], data[:, 1], colour="white", size=18, marker="star"
            ),
            streams=[self._query_pipe],
        )
        return (base * results * query).opts(active_tools=["pan"])  # the wheel scrolls the page

    # -- queries -----------------------------------------------------------------------------
    def _services(self) -> Any:
        from backend.latent.service import latent_services

        if not self.data.encoder:
            raise LatentError(
                f"survey {self.data.name} has no encoder yet; run `python -m backend prepare "
                f"--survey {self.data.name}`"
            )
        return latent_services(self.data.name, self.data.encoder)

    def _on_request(self, *_: object) -> None:
        if self.state.similar_from is None:
            return
        self.mode.value = MODES[0]
        in_thread(guarded(self._alert)(self.search))

    def search(self) -> None:
        """Run the query the controls describe; a failed one clears the previous results (they
        would read as its answer); a refused one (the session's role) leaves them."""
        require_session("search")
        try:
            self._search()
        except Exception:
            self._results, self._query_html.object, self._gallery.items = None, "", []
            self._download.disabled = True
            for pipe in (self._results_pipe, self._query_pipe):
                pipe.send(np.zeros((0, 2)))
            raise

    def _search(self) -> None:
        clear(self._alert)
        search = self._services().search()
        k = int(self.k.value)
        mode = self.mode.value
        vector = None
        if mode == MODES[0]:
            index = self.state.picked
            if index is None:
                raise LatentError(
                    "no object picked yet: click one on the Explore map, or search by id"
                )
            result = search.by_object(int(index), k)
        elif mode == MODES[1]:
            text = _typed(self.object_id)
            if not text:
                raise LatentError("type an object id (or #row) first")
            ref: int | str = int(text[1:]) if text.startswith("#") and text[1:].isdigit() else text
            result = search.by_object(ref, k)
        elif mode == MODES[2]:
            text = _typed(self.position)
            if not text:
                raise LatentError("type a sky position first, e.g. 150.1 2.2")
            result = search.by_position(text, k, radius_arcsec=float(self.radius.value))
        else:
            result, vector = self._image_search(search, k)
        self._show(result, vector)

    def _image_search(self, search: Any, k: int) -> tuple[pd.DataFrame, np.ndarray]:
        from backend.latent.embedder import encoder_embedder  # loads torch, in this thread

        meta = self.data.survey.meta
        cutouts = read_upload(self.upload.value, self.upload.filename or "", meta, self.fill.value)
        embed = encoder_embedder(self.data.encoder, tuple(meta.bands))
        vectors = check_embeddings(embed(cutouts), len(cutouts), search.index.dim)
        vector = vectors.mean(axis=0)
        query = {
            "type": "image",
            "file": self.upload.filename,
            "preview": preview_uri(cutouts[0], meta),
            "ood": ood_note(self.data.encoder, vectors, self.upload.filename or ""),
        }
        return search.by_vector(vector, k, query=query), vector

    def refine(self) -> None:
        """Search again: like the query object and the + marks, unlike the - marks."""
        clear(self._alert)
        with self._marks_lock:
            positive = [i for i, m in self._marks.items() if m == "pos"]
            negative = [i for i, m in self._marks.items() if m == "neg"]
        if self._query_index is not None and self._query_index not in negative:
            positive = [self._query_index, *positive]
        if not positive:
            raise LatentError("mark at least one result + like (or search from an object first)")
        result = self._services().search().by_examples(positive, negative, int(self.k.value))
        self._show(result, None, keep_marks=True)

    # -- results -----------------------------------------------------------------------------
    def _show(
        self, result: pd.DataFrame, vector: np.ndarray | None, keep_marks: bool = False
    ) -> None:
        query = result.attrs.get("query", {})
        self._results = result
        if not keep_marks:
            with self._marks_lock:
                self._marks = {}
        self._query_index = (
            query.get("index") if query.get("type") in ("object", "position") else None
        )
        if self._query_index is not None:
            self.state.pick(self._query_index)
        self._query_html.object = self._describe(query, len(result))
        self._gallery.items = self._items()
        self._download.disabled = result.empty
        self._update_filename()
        self._update_markers(vector)

    def _describe(self, query: dict[str, Any], n: int) -> str:
        kind = query.get("type")
        if kind in ("object", "position"):
            i = int(query["index"])
            where = ""
            if kind == "position":
                where = f" (nearest to the position, {query.get('separation_arcsec', 0):.2f}″ away)"
            pic = self.data.thumb(i, 72)
            text = (
                f"{n} objects most like <code>{html.escape(self.data.object_id(i))}</code>{where}"
            )
        elif kind == "image":
            pic = query.get("preview", "")
            text = f"{n} objects most like your upload <code>{html.escape(str(query.get('file')))}</code>"
            text += query.get("ood", "")  # escaped HTML (app.uploads.ood_note)
        else:
            pos, neg = len(query.get("positive", [])), len(query.get("negative", []))
            pic = ""
            text = f"{n} objects like {pos} example(s) and unlike {neg}"
        img = f"<img src='{pic}' width='72' height='72' style='border-radius:4px'>" if pic else ""
        return (
            f"<div style='display:flex;gap:10px;align-items:center;font:14px system-ui'>{img}"
            f"<div><b>Query</b><br>{text}</div></div>"
        )

    def _items(self) -> list[dict[str, Any]]:
        if self._results is None:
            return []
        items = []
        for row in self._results.itertuples():
            i = int(row.index)
            sub = f"similarity {row.similarity:.3f}"
            if "pred_class" in self.data.table:
                sub += f" · {self.data.table['pred_class'].iat[i]}"
            items.append(
                {"index": i, "id": str(row.object_id), "url": self.data.thumb(i, 96),
                 "caption": f"{int(row.rank)}. {row.object_id}", "sub": sub,
                 "mark": self._marks.get(i, "")}
            )  # fmt: skip
        return items

    def _update_markers(self, vector: np.ndarray | None) -> None:
        if not self.data.has_map or self._results is None:
            return
        idx = self._results["index"].to_numpy(int)
        self._results_pipe.send(np.column_stack([self.data.x[idx], self.data.y[idx]]))
        if self._query_index is not None:
            q = self._query_index
            self._query_pipe.send(np.array([[self.data.x[q], self.data.y[q]]]))
        elif vector is not None:
            self._query_pipe.send(self._services().map().place(vector)[:1])
        else:
            self._query_pipe.send(np.zeros((0, 2)))

    def _gallery_action(self, action: str, index: int) -> None:
        if action == "open":
            self.mode.value = MODES[0]
            self.state.pick(index)
            in_thread(guarded(self._alert)(self.search))
            return
        with self._marks_lock:  # marks arrive on several pool threads at once
            if self._marks.get(index) == action:
                self._marks.pop(index)
            else:
                self._marks[index] = action
            marked = bool(self._marks)
            items = self._items()
        self.refine_button.disabled = not marked
        self._gallery.items = items

    # -- export ------------------------------------------------------------------------------
    def _update_filename(self) -> None:
        self._download.filename = file_name(f"{self.data.name}-similar", self._fmt.value)

    def _export_file(self) -> io.BytesIO:
        if self._results is None:
            raise LatentError("search first")
        return table_bytes(self._results, self._fmt.value)

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        inputs = pn.Column(
            pn.panel(pn.bind(self._mode_inputs, self.mode, self.state.param.picked)),
            sizing_mode="stretch_width",
        )
        controls = pn.Column(
            heading("Search from"),
            self.mode,
            inputs,
            self.k,
            pn.Row(self.search_button, self.refine_button),
            pn.Row(self._fmt, self._download),
            self._save,
            width=380,
            sizing_mode="fixed",
        )
        right = pn.Column(self._map, width=460, sizing_mode="fixed") if self.data.has_map else None
        top = pn.Row(
            controls,
            pn.Column(self._query_html, sizing_mode="stretch_width"),
            *([right] if right else []),
        )
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            self._alert,
            top,
            self._gallery,
            sizing_mode="stretch_width",
        )

    def _mode_inputs(self, mode: str, picked: int | None) -> pn.viewable.Viewable:
        if mode == MODES[0]:
            text = (
                f"Searching from the picked object <code>{html.escape(self.data.object_id(picked))}</code>."
                if picked is not None
                else "No object picked yet: click one on the Explore map."
            )
            return pn.pane.HTML(f"<div style='font:13px system-ui;color:#475569'>{text}</div>")
        if mode == MODES[1]:
            return self.object_id
        if mode == MODES[2]:
            return pn.Column(self.position, self.radius)
        return pn.Column(self.upload, self.fill)
