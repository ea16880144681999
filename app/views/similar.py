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
MAP_TITLE = "results (orange) and query (white) on the map"
MAP_MIN_WIDTH, MAP_MAX_WIDTH = 420, 720  # the map beside the controls takes the rest of the row
HELP = """
**Find look-alikes** in the encoder's latent space (cosine similarity of embeddings). Search
from the object picked on the map, an object id (or `#123` for row 123), a sky position
(`150.1 2.2` in degrees or `10:00:24 +02:12:00`) or your own cutout (FITS with the survey's
bands, PNG for RGB surveys, or `.npy`). **Click** a result to search from it; mark results
**+ like** / **- unlike** and *Refine* to steer the search (Rocchio feedback).
"""


def result_xy(found: pd.DataFrame | None, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, 2) places of a search's results on the map ((0, 2) before any search)."""
    idx = np.zeros(0, int) if found is None else found["index"].to_numpy(int)
    return np.column_stack([x[idx], y[idx]]).astype(float).reshape(-1, 2)


def query_marker(xy: np.ndarray) -> hv.Points:
    """Where the query is on the map (a white star; nothing for a refined search)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    return plots.marker_overlay(xy[:, 0], xy[:, 1], colour="white", size=18, marker="star")


def search_marks(data: tuple[np.ndarray, np.ndarray]) -> hv.Overlay:
    """The results (orange dots) and the query (white star) of a search, from their places
    ``(results_xy, query_xy)``: one frame, so the map is updated once per search."""
    results, query = data
    return plots.marker_overlay(*np.asarray(results).reshape(-1, 2).T, size=8) * query_marker(query)


def query_html(query: dict[str, Any], n: int, object_id: Any, thumb: Any) -> str:
    """The header of a search's results: what was searched from, with its picture (HTML,
    escaped); ``object_id(i)`` and ``thumb(i, size)`` name and picture row ``i``."""
    kind = query.get("type")
    if kind in ("object", "position"):
        i = int(query["index"])
        where = ""
        if kind == "position":
            where = f" (nearest to the position, {query.get('separation_arcsec', 0):.2f}″ away)"
        pic = thumb(i, 72)
        text = f"{n} objects most like <code>{html.escape(object_id(i))}</code>{where}"
    elif kind == "image":
        pic = query.get("preview", "")
        text = (
            f"{n} objects most like your upload <code>{html.escape(str(query.get('file')))}</code>"
        )
        text += query.get("ood", "")  # escaped HTML (app.uploads.ood_note)
    else:
        pos, neg = len(query.get("positive", [])), len(query.get("negative", []))
        pic = ""
        text = f"{n} objects like {pos} example(s) and unlike {neg}"
    img = f"<img src='{pic}' width='72' height='72' style='border-radius:4px'>" if pic else ""
    return (
        f"<div style='display:flex;gap:10px;align-items:center;font:14px system-ui'>{img}"
        f"<div><b>Query</b>: {text}</div></div>"
    )


def result_items(
    found: pd.DataFrame | None, marks: dict[int, str], classes: Any, thumb: Any
) -> list[dict[str, Any]]:
    """The results as gallery items, with their +/- marks; ``classes``: the predicted class
    per row (or None), ``thumb(i, size)``: a row's picture."""
    if found is None:
        return []
    items = []
    for row in found.itertuples():
        i = int(row.index)
        sub = f"#{int(row.rank)} · sim {row.similarity:.3f}"  # one line under a 96 px picture
        if classes is not None:
            sub += f"\n{classes.iat[i]}"
        items.append(
            {"index": i, "id": str(row.object_id), "url": thumb(i, 96),
             "caption": str(row.object_id), "sub": sub, "mark": marks.get(i, "")}
        )  # fmt: skip
    return items


def query_row(found: pd.DataFrame | None) -> int | None:
    """The row searched from (an object or a position's nearest object), else None."""
    query = {} if found is None else found.attrs.get("query", {})
    return query.get("index") if query.get("type") in ("object", "position") else None


class SimilarView(pn.viewable.Viewer):
    """Query controls, results gallery with +/- marks, and the results on the map."""

    data = param.ClassSelector(class_=SurveyData, doc="the survey searched")
    state = param.ClassSelector(class_=AppState, doc="the session's shared state")
    query_mode = param.Selector(default=MODES[0], objects=MODES, doc="what the search is from")
    query_id = param.String(default="", doc="an object id, or #row, to search from")
    query_position = param.String(
        default="", doc="a sky position to search from (degrees or sexagesimal)"
    )
    match_radius = param.Number(
        default=5.0, bounds=(0.1, None), doc="how far (arcsec) the nearest object may be"
    )
    fill_bad = param.Boolean(default=False, doc="replace NaN/inf pixels of an upload by 0")
    n_results = param.Selector(default=24, objects=[12, 24, 48, 96], doc="results per search")
    fmt = param.Selector(default="CSV", objects=list(FORMATS), doc="the download's file format")
    found = param.DataFrame(
        default=None, allow_None=True,
        doc="the latest search's results (index, object_id, rank, similarity; its query in "
        "attrs), None before any or after a failed one",
    )  # fmt: skip
    query_xy = param.Array(
        default=np.zeros((0, 2)), doc="where the query is on the map ((1, 2), (0, 2): nowhere)"
    )
    marks = param.Dict(default={}, doc="row -> 'pos' or 'neg': the results marked + / -")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self.mode = pn.widgets.RadioButtonGroup.from_param(
            self.param.query_mode, label="", color="light", sizing_mode="stretch_width"
        )
        self.object_id = pn.widgets.TextInput.from_param(
            self.param.query_id, label="Object id",
            placeholder=f"{self._example_id()}  or  #42 for row 42",
        )  # fmt: skip
        self.position = pn.widgets.TextInput.from_param(
            self.param.query_position, label="RA Dec",
            placeholder="150.1 2.2   or   10:00:24 +02:12:00",
        )  # fmt: skip
        for field, name in ((self.object_id, "query_id"), (self.position, "query_position")):
            field.link(self, value_input=name)  # each key, not only Enter or leaving the field
            pn.bind(self._search_later, field.param.enter_pressed, watch=True)
        self.radius = pn.widgets.FloatInput.from_param(
            self.param.match_radius, label="Match radius (arcsec)"
        )
        self.upload = pn.widgets.FileInput(accept=ACCEPT, multiple=False)
        self.fill = pn.widgets.Checkbox.from_param(
            self.param.fill_bad, label="replace NaN/inf pixels by 0"
        )
        self.k = pn.widgets.Select.from_param(self.param.n_results, label="Results")
        self.search_button = pn.widgets.Button(label="Search", color="primary")
        self.refine_button = pn.widgets.Button(
            label="Refine with +/- marks", color="default", disabled=self.no_marks
        )
        self._query_html = pn.pane.HTML(self.query_text, sizing_mode="stretch_width")
        self._gallery = ThumbGallery(
            items=self.gallery_items, size=96, actions=["pos", "neg"],
            empty_text="Results appear here.", sizing_mode="stretch_width",
        )  # fmt: skip
        self._marks_lock = threading.Lock()
        self._fmt = pn.widgets.Select.from_param(self.param.fmt, label="", width=100)
        self._download = pn.widgets.FileDownload(
            callback=guarded(self._alert)(self._export_file), filename=self.download_name,
            label="Download results", color="success", width=180,
            disabled=self.nothing_found,
        )  # fmt: skip
        self._save = SaveCollection(
            ids=lambda: [] if self.found is None else self.found["object_id"].tolist(),
            data=self.data, state=self.state, kind="search",
        )  # fmt: skip
        self._marks_pipe = hv.streams.Pipe(data=(np.zeros((0, 2)), np.zeros((0, 2))))
        self._map = pn.pane.HoloViews(self._build_map(), sizing_mode="stretch_width")

        self.search_button.on_click(lambda _: self._search_later())
        self.refine_button.on_click(lambda _: in_thread(guarded(self._alert)(self.refine)))
        self._gallery.on_action(guarded(self._alert)(self._gallery_action))
        if not self.data.encoder:
            say(self._alert, " ".join(self.data.problems), "warning")
        elif self.state.similar_from is not None:
            self._on_request()

    def _example_id(self) -> str:
        return self.data.object_id(0) if len(self.data) else "object-id"

    @property
    def _results(self) -> pd.DataFrame | None:
        return self.found

    # -- what is shown: param.depends methods over the pure builders ------------------------
    @param.depends("found")
    def query_text(self) -> str:
        """What the results shown were searched from (HTML)."""
        if self.found is None:
            return ""
        query = self.found.attrs.get("query", {})
        return query_html(query, len(self.found), self.data.object_id, self.data.thumb)

    @param.depends("found", "marks")
    def gallery_items(self) -> list[dict[str, Any]]:
        """The results as gallery items with their marks."""
        classes = self.data.table["pred_class"] if "pred_class" in self.data.table else None  # noqa: SIM401 (paged tables have no get)
        return result_items(self.found, self.marks, classes, self.data.thumb)

    @param.depends("found")
    def nothing_found(self) -> bool:
        """Whether there is nothing to download."""
        return self.found is None or self.found.empty

    @param.depends("marks")
    def no_marks(self) -> bool:
        """Whether no result is marked (nothing to refine with)."""
        return not self.marks

    @param.depends("fmt")
    def download_name(self) -> str:
        """The download's file name, in the chosen format."""
        return file_name(f"{self.data.name}-similar", self.fmt)

    # -- map ---------------------------------------------------------------------------------
    def _build_map(self) -> hv.DynamicMap | None:
        if not self.data.has_map:
            return None
        points = plots.map_points(self.data.x, self.data.y)
        style = plots.MapStyle("count", cmap="gray", height=420, colorbar=False)  # title: HTML
        home = self.data.memo("home", lambda: home_view(self.data.x, self.data.y))
        self._server_map = ServerMap(points, style, *home)
        base = self._server_map.dmap
        marks = hv.DynamicMap(search_marks, streams=[self._marks_pipe])
        return (base * marks).opts(active_tools=["pan"])  # the wheel scrolls the page

    @param.depends("found", "query_xy", watch=True)
    def _send_marks(self) -> None:
        """The results and the query on the map, in one frame, sent before the gallery gets
        the results (this watcher is registered before the gallery's), so the page draws the
        markers before it loads the pictures (they came ~3 s after the thumbnails under load:
        two map updates, queued behind the gallery, its pictures and the other views)."""
        if self.data.has_map:
            self._marks_pipe.send((result_xy(self.found, self.data.x, self.data.y), self.query_xy))

    # -- queries -----------------------------------------------------------------------------
    def _services(self) -> Any:
        from backend.latent.service import latent_services

        if not self.data.encoder:
            raise LatentError(
                f"survey {self.data.name} has no encoder yet; run `python -m backend prepare "
                f"--survey {self.data.name}`"
            )
        return latent_services(self.data.name, self.data.encoder)

    @param.depends("state.similar_from", watch=True)
    def _on_request(self) -> None:
        """Another view asked for look-alikes of an object: search from it."""
        if self.state.similar_from is None:
            return
        self.query_mode = MODES[0]
        self._search_later()

    def _search_later(self, *_: object) -> None:
        in_thread(guarded(self._alert)(self.search))

    def search(self) -> None:
        """Run the query the params describe; a failed one clears the previous results (they
        would read as its answer); a refused one (the session's role) leaves them."""
        require_session("search")
        try:
            self._search()
        except Exception:
            self.param.update(found=None, marks={}, query_xy=np.zeros((0, 2)))
            raise

    def _search(self) -> None:
        clear(self._alert)
        search = self._services().search()
        k = int(self.n_results)
        mode = self.query_mode
        vector = None
        if mode == MODES[0]:
            index = self.state.picked
            if index is None:
                raise LatentError(
                    "no object picked yet: click one on the Explore map, or search by id"
                )
            result = search.by_object(int(index), k)
        elif mode == MODES[1]:
            text = self.query_id.strip()
            if not text:
                raise LatentError("type an object id (or #row) first")
            ref: int | str = int(text[1:]) if text.startswith("#") and text[1:].isdigit() else text
            result = search.by_object(ref, k)
        elif mode == MODES[2]:
            text = self.query_position.strip()
            if not text:
                raise LatentError("type a sky position first, e.g. 150.1 2.2")
            result = search.by_position(text, k, radius_arcsec=float(self.match_radius))
        else:
            result, vector = self._image_search(search, k)
        self._show(result, vector)

    def _image_search(self, search: Any, k: int) -> tuple[pd.DataFrame, np.ndarray]:
        from backend.latent.embedder import encoder_embedder  # loads torch, in this thread

        meta = self.data.survey.meta
        cutouts = read_upload(self.upload.value, self.upload.filename or "", meta, self.fill_bad)
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
            marks = self.marks
        positive = [i for i, m in marks.items() if m == "pos"]
        negative = [i for i, m in marks.items() if m == "neg"]
        start = query_row(self.found)
        if start is not None and start not in negative:
            positive = [start, *positive]
        if not positive:
            raise LatentError("mark at least one result + like (or search from an object first)")
        result = self._services().search().by_examples(positive, negative, int(self.n_results))
        self._show(result, None, keep_marks=True)

    # -- results -----------------------------------------------------------------------------
    def _show(
        self, result: pd.DataFrame, vector: np.ndarray | None, keep_marks: bool = False
    ) -> None:
        """Show ``result``: the search's object becomes the picked one, and the query's place
        on the map is found (an uploaded image's by its embedding)."""
        start = query_row(result)
        xy = np.zeros((0, 2))
        if self.data.has_map:
            if start is not None:
                xy = np.array([[self.data.x[start], self.data.y[start]]])
            elif vector is not None:
                xy = np.asarray(self._services().map().place(vector)[:1], dtype=float)
        with self._marks_lock:  # the markers go first (:meth:`_send_marks`), then the gallery
            marks = self.marks if keep_marks else {}
            self.param.update(found=result, marks=marks, query_xy=xy)
        if start is not None:  # the other views (Explore's marker, the details) follow
            self.state.pick(start)

    def _gallery_action(self, action: str, index: int) -> None:
        if action == "open":
            self.query_mode = MODES[0]
            self.state.pick(index)
            self._search_later()
            return
        with self._marks_lock:  # marks arrive on several pool threads at once
            marks = dict(self.marks)
            if marks.get(index) == action:
                marks.pop(index)
            else:
                marks[index] = action
            self.marks = marks

    # -- export ------------------------------------------------------------------------------
    def _export_file(self) -> io.BytesIO:
        if self.found is None:
            raise LatentError("search first")
        return table_bytes(self.found, self.fmt)

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        inputs = pn.Column(
            pn.panel(pn.bind(self._mode_inputs, self.param.query_mode, self.state.param.picked)),
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
        right = (  # titled above the figure: a Bokeh title shares the toolbar's row and folded
            # six of its eight tools into "⋮"
            pn.Column(
                heading(MAP_TITLE),
                self._map,
                min_width=MAP_MIN_WIDTH,
                max_width=MAP_MAX_WIDTH,
                sizing_mode="stretch_width",
            )
            if self.data.has_map
            else None
        )
        top = pn.Row(controls, *([right] if right else []), sizing_mode="stretch_width")
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            self._alert,
            top,
            self._query_html,  # over the results, the width of the page: on one line
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
