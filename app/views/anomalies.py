"""Anomalies: ranked candidates, per-scorer breakdown, interest feedback (0-5) that re-ranks."""

from __future__ import annotations

import html
import io
import threading
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from panel.io import hold

from app.auth import require_session, restrict
from app.data import SurveyData
from app.exporting import FORMATS, file_name, table_bytes
from app.safe import guarded, heading, in_thread, message_pane, say
from app.state import AppState
from app.views.collections import SaveCollection
from app.widgets import CutoutStage, KeyListener, ThumbGallery, data_table, kbd
from backend.feedback import FeedbackError, latest_interest, record_interest
from backend.latent.errors import LatentError
from backend.latent.paging import ColumnRanking, RankedList
from backend.usertext import validate_user_name

COMBINED = "combined (re-ranked by feedback)"
SCORER_NAMES = {
    "recon": "autoencoder error",
    "recon_peak": "autoencoder peak residual",
    "recon_excess": "autoencoder residual above noise",
    "iforest": "isolation forest",
    "knn": "kNN distance",
    "lof": "local outlier factor",
    "sharpness": "sharper than the PSF",
    "asymmetry": "rotational asymmetry",
    "likeness": "near the anomalies you labelled",
}
INTEREST = {0: "boring", 1: "meh", 2: "somewhat", 3: "interesting", 4: "very", 5: "fascinating"}
GALLERY_SIZE = 48
TABLE_ROWS = 200
KEYS = [str(k) for k in INTEREST] + ["ArrowLeft", "ArrowRight"]
HELP = """
**Anomaly candidates**, most unusual first: each scorer (kNN distance in latent space, and
on the pixels: sharpness beyond the PSF, as of cosmic rays and hot pixels, and rotational
asymmetry, as of mergers, blends and transients) is rank-normalised to 0–1; a candidate
ranks by its highest, so an object extreme for any one scorer comes up.
Give each candidate an **interest score** from 0 (boring: artefact, known type) to 5
(fascinating); the list re-ranks at once, pulling up objects like the ones you found
interesting and pushing down look-alikes of the boring ones (Astronomaly-style active anomaly
detection). Scores are stored under your name.
"""


def ranking_note(team: bool, user: str) -> str:
    """The line that says whose interest scores re-rank the list (HTML, escaped)."""
    whose = (
        "the team's interest scores (each person's latest, averaged)"
        if team
        else f"your own interest scores ({html.escape(user)}); tick <i>team ranking</i> for "
        "everyone's"
    )
    return f"<div style='font-size:12px;color:#475569'>Ranking re-ranked by {whose}.</div>"


def combination_note(attrs: dict[str, Any]) -> str:
    """The line that says which formula labelled anomalies chose for the list (HTML, escaped;
    empty when none chose it)."""
    chosen = attrs.get("combination") or {}
    labels = chosen.get("labels") or {}
    if not chosen.get("average_precision"):
        return ""
    classes = html.escape(", ".join(labels.get("classes", [])))
    formula = str(chosen.get("formula"))
    like = (
        " <i>likeness</i> puts up objects near the anomalies you labelled: the share of an "
        "object's nearest neighbours (in the encoder's space) that are labelled anomalies, its "
        "own label not counted."
        if "likeness" in formula
        else ""
    )
    return (
        "<div style='font-size:12px;color:#475569'>Scorers combined by "
        f"<code>{html.escape(formula)}</code>: of a few fixed formulas, the "
        f"one that ranks this survey's {int(chosen.get('n_positive', 0)):,} labelled anomalies "
        f"({classes}) best; {int(labels.get('n_positive_held_out', 0)):,} more are held out "
        f"for validation.{like}</div>"
    )


def status_markdown(listed: int, scored: int, cursor: int) -> str:
    """The list's header: candidates listed, scored so far, which one is shown."""
    if not listed:
        return "**No candidates left** with these filters."
    return (
        f"**{listed:,} candidates** listed · {scored:,} scored so far (all users) · "
        f"showing #{cursor + 1:,} of this list"
    )


def band_strip(thumbs: list[tuple[str, str]]) -> str:
    """One small cutout per band, captioned: ``thumbs`` is (band, url) in band order."""
    imgs = "".join(
        f"<figure style='margin:0;text-align:center'><img src='{html.escape(url)}' "
        f"width='60' height='60' style='border-radius:3px'><figcaption style='font-size:11px;"
        f"color:#6b7280'>{html.escape(band)}</figcaption></figure>"
        for band, url in thumbs
    )
    return f"<div style='display:flex;gap:4px'>{imgs}</div>"


def breakdown_html(row: pd.Series, scorers: list[str], rank: int) -> str:
    """A candidate's final score, its rank among all objects, interest given and predicted,
    and one bar per scorer (rank percentile, raw value)."""
    bars = []
    for s in scorers:
        v = float(row[s]) if np.isfinite(row[s]) else 0.0
        raw = row.get(f"{s}_raw", np.nan)
        bars.append(
            f"<div class='lsa-bar'><span>{html.escape(SCORER_NAMES.get(s, s))}</span>"
            f"<i style='width:{100 * v:.0f}%'></i><b>{v:.2f}</b>"
            f"<small>raw {float(raw):.3g}</small></div>"
        )
    interest = row.get("interest")
    given = f"{interest:.1f}" if isinstance(interest, float) and np.isfinite(interest) else "—"
    pred = row.get("interest_pred", np.nan)
    pred_text = f" · predicted interest {pred:.1f}" if np.isfinite(pred) else ""
    return (
        "<style>.lsa-bar{display:grid;grid-template-columns:120px 1fr 34px 70px;gap:6px;"
        "align-items:center;font:13px system-ui}.lsa-bar i{display:block;height:10px;"
        "border-radius:3px;background:#7c3aed}.lsa-bar small{color:#6b7280}</style>"
        f"<div style='font:14px system-ui;margin-bottom:4px'>final score "
        f"<b>{float(row['final']):.3f}</b> (rank {rank:,} of all objects) · anomaly "
        f"{float(row['anomaly']):.3f}{pred_text} · your/average interest {given}</div>"
        + "".join(bars)
    )


def interest_ack(object_id: str, score: int, user: str, reranked: bool) -> str:
    """What an interest score did (escaped): stored, and whether the list is re-ranked yet."""
    done = "list re-ranked." if reranked else "re-ranking…"
    return (
        f"✓ {html.escape(object_id)}: interest {score} ({INTEREST[score]}) stored for "
        f"{html.escape(user)}; {done}"
    )


class AnomaliesView(pn.viewable.Viewer):
    """Current candidate with interest buttons and keys; ranked gallery and table; export."""

    data = param.ClassSelector(class_=SurveyData, doc="the survey shown")
    state = param.ClassSelector(class_=AppState, doc="the session's shared state")
    rank_by = param.Selector(
        default="final", objects=["final"],
        doc="what the list ranks by: final (every scorer combined, re-ranked by interest) or "
        "one scorer's rank percentile",
    )  # fmt: skip
    unscored_only = param.Boolean(
        default=True, doc="list only objects nobody (or, without team ranking, you) scored yet"
    )
    team_ranking = param.Boolean(
        default=False, doc="re-rank by everyone's latest interest scores, not only yours"
    )
    candidates = param.ClassSelector(
        class_=(RankedList, ColumnRanking), default=None, allow_None=True,
        doc="the candidates listed now, ranked and filtered (paged: rows made when shown)",
    )  # fmt: skip
    cursor = param.Integer(
        default=0, bounds=(0, None), doc="position in the list of the candidate shown (0: top)"
    )
    fmt = param.Selector(default="CSV", objects=list(FORMATS), doc="the download's file format")
    top_n = param.Integer(
        default=GALLERY_SIZE, bounds=(1, 10_000), doc="how many of the top candidates to save"
    )

    def __init__(self, **params: Any) -> None:
        params.setdefault("candidates", RankedList.empty())  # before the watchers exist
        super().__init__(**params)
        self._alert = message_pane()
        self._ack = message_pane()
        self._lock = threading.RLock()
        self._ranker = None
        self._ranked = pd.DataFrame()
        self._plain = False  # no interest scores: the list reads the scores file page by page
        self._combination = ""  # what chose the scorers' combination (combination_note)
        scorers = self._load_ranker()
        options = {COMBINED: "final"} | {f"{SCORER_NAMES.get(s, s)} only": s for s in scorers}
        self.param.rank_by.objects = options
        self.scorer = pn.widgets.Select.from_param(self.param.rank_by, label="Rank by", width=300)
        self.hide_scored = pn.widgets.Checkbox.from_param(
            self.param.unscored_only, label="hide objects already scored"
        )
        self.team = pn.widgets.Checkbox.from_param(self.param.team_ranking, label="team ranking")
        self._ranking_note = pn.pane.HTML(self.ranking_text, sizing_mode="stretch_width")
        self._stage = CutoutStage(size=256)
        self._bands = pn.pane.HTML(self.band_text)
        self._scores = pn.pane.HTML(self.scores_text, sizing_mode="stretch_width", min_width=320)
        self._buttons = [
            pn.widgets.Button(label=f"{k} · {v}", width=112, color="default")
            for k, v in INTEREST.items()
        ]
        for k, b in enumerate(self._buttons):
            b.on_click(lambda _, k=k: in_thread(guarded(self._alert)(lambda: self.give(k))))
        self._prev = pn.widgets.Button(label="◀ previous", width=110)
        self._next = pn.widgets.Button(label="next ▶", width=110)
        self._similar = pn.widgets.Button(label="Find similar", width=120, color="primary")
        self._similar.on_click(guarded(self._alert)(lambda _: self._ask_similar()))
        self._prev.on_click(guarded(self._alert)(lambda _: self.move(-1)))
        self._next.on_click(guarded(self._alert)(lambda _: self.move(1)))
        self._keys = KeyListener(
            keys=KEYS,
            hint=f"Keys: {kbd('0')}–{kbd('5')} interest · {kbd('←')} {kbd('→')} previous / next",
        )
        self._keys.on_key(guarded(self._alert)(self._on_key))
        if why := restrict("interest", self._buttons):  # a viewer: the keys only move
            self._keys.param.update(
                keys=KEYS[-2:], hint=f"Keys: {kbd('←')} {kbd('→')} previous / next"
            )
            say(self._ack, why, "info")
        self._gallery = ThumbGallery(
            items=self.gallery_items, size=80, empty_text="No candidates.",
            sizing_mode="stretch_width",
        )  # fmt: skip
        self._gallery.on_action(guarded(self._alert)(self._gallery_action))
        self._status = pn.pane.Markdown(self.status_text, margin=(0, 10))
        self._table = data_table(pd.DataFrame(), height=320, selectable=False)
        self._table.on_click(guarded(self._alert)(self._table_click))
        self._fmt = pn.widgets.Select.from_param(self.param.fmt, label="", width=100)
        self._download = pn.widgets.FileDownload(
            callback=guarded(self._alert)(self._export_file), filename="anomalies.csv",
            label="Download candidates", color="success", width=190,
        )  # fmt: skip
        self._update_filename()
        self._top_n = pn.widgets.IntInput.from_param(self.param.top_n, label="Top N to save")
        self._save = SaveCollection(
            ids=self._top_ids, data=self.data, state=self.state, kind="anomalies"
        )
        if self._ranker is not None:
            self._rerank()

    # -- data --------------------------------------------------------------------------------
    def _load_ranker(self) -> list[str]:
        from backend.latent.service import latent_services

        if not self.data.encoder:
            say(
                self._alert, " ".join(self.data.problems) or "no encoder for this survey", "warning"
            )
            return []
        try:
            self._ranker = latent_services(self.data.name, self.data.encoder).anomalies()
        except (LatentError, FileNotFoundError) as exc:
            say(self._alert, str(exc), "warning")
            return []
        self._combination = combination_note(self._ranker.attrs)
        return self._ranker.scorers

    @param.depends("team_ranking", "state.user")
    def ranking_text(self) -> str:
        """Whose interest scores re-rank the list, and what chose its combination (HTML,
        escaped)."""
        return ranking_note(self.team_ranking, self.state.user_name) + self._combination

    @param.depends("rank_by", "unscored_only", watch=True)
    def _on_filters(self) -> None:
        if self._ranker is not None:
            guarded(self._alert)(self._refilter)()

    @param.depends("team_ranking", watch=True)
    def _on_team(self) -> None:
        if self._ranker is not None:
            guarded(self._alert)(self._rerank)()

    def _rerank(self) -> None:
        """Re-rank with this user's latest interest scores (or, as chosen, everyone's), then
        refresh the list."""
        team = self.team_ranking
        interest = latest_interest(self.data.name, user=None if team else self.state.user_name)
        ranked = self._ranker.reranked(interest) if len(interest) else None  # in row order
        with self._lock:  # None: the plain scores, listed from the file (plain_listing)
            self._ranked = pd.DataFrame() if ranked is None else ranked
            self._plain = ranked is None
        self._refilter(keep=None)

    def _refilter(self, keep: int | None = -1) -> None:
        """Apply the scorer and 'hide scored' filters; the cursor goes to ``keep`` (an object
        index) when still listed, else to the top (None) or stays in place (-1). The list is
        ranked by partial selection, page by page (:class:`backend.latent.paging.RankedList`)."""
        with self._lock:
            ranked, unscored = self._ranked, None
            if self._plain:  # nobody's interest: every object unscored, nothing re-ranked
                listing = self._ranker.plain_listing(self.rank_by)
            elif ranked.empty:
                listing = RankedList.empty()
            else:
                unscored = ranked["interest"].isna().to_numpy()
                only = unscored if self.unscored_only else None
                listing = self._ranker.listing(ranked, self.rank_by, only)
            cursor = self.cursor
            if keep is None:  # the best candidate nobody has scored yet
                listed = len(listing) and unscored is not None
                cursor = (listing.first_where(unscored) if listed else None) or 0
            elif keep >= 0:
                cursor = (listing.position_of(keep) if len(listing) else None) or 0
            cursor = int(np.clip(cursor, 0, max(len(listing) - 1, 0)))
            with hold():
                self.param.update(candidates=listing, cursor=cursor)

    def current(self) -> int | None:
        """Row index of the candidate shown."""
        with self._lock:
            listing, cursor = self.candidates, self.cursor
        if listing is None or not len(listing):
            return None
        return int(listing.row(cursor)["index"])

    # -- actions -----------------------------------------------------------------------------
    def give(self, score: int) -> None:
        """Store ``score`` for the current candidate, then re-rank and show the next one."""
        require_session("interest")
        index = self.current()
        if index is None:
            return
        object_id = self.data.object_id(index)
        user = validate_user_name(self.state.user_name, error=FeedbackError)  # as labels' names
        record_interest(self.data.survey, object_id, score, user)
        say(self._ack, interest_ack(object_id, score, user, reranked=False), "success")
        self._rerank()
        say(self._ack, interest_ack(object_id, score, user, reranked=True), "success")

    def move(self, step: int) -> None:
        """Show the candidate ``step`` places down (up when negative) the list."""
        with self._lock:
            if len(self.candidates):
                self.cursor = int(np.clip(self.cursor + step, 0, len(self.candidates) - 1))

    def _ask_similar(self) -> None:
        index = self.current()
        if index is not None:
            self.state.ask_similar(index)

    def _on_key(self, key: str) -> None:
        if key == "ArrowLeft":
            self.move(-1)
        elif key == "ArrowRight":
            self.move(1)
        elif key.isdigit():
            in_thread(guarded(self._alert)(lambda: self.give(int(key))))

    def _gallery_action(self, action: str, index: int) -> None:
        if action == "open":
            self._jump(index)

    def _table_click(self, event: Any) -> None:
        row = getattr(event, "row", None)
        if row is not None and 0 <= row < len(self._table.value):
            self._jump(int(self._table.value["index"].iat[row]))

    def _jump(self, index: int) -> None:
        with self._lock:
            where = self.candidates.position_of(index)
            if where is not None:
                self.cursor = where

    # -- display: param.depends methods over the pure builders ------------------------------
    @param.depends("candidates", "cursor")
    def status_text(self) -> str:
        """The list's header (Markdown)."""
        listing = self.candidates
        scored = int(self._ranked["interest"].notna().sum()) if len(self._ranked) else 0
        return status_markdown(len(listing) if listing is not None else 0, scored, self.cursor)

    @param.depends("candidates", "cursor")
    def band_text(self) -> str:
        """The shown candidate's cutout in each band (HTML)."""
        index = self.current()
        if index is None:
            return ""
        return band_strip([(b, self.data.thumb(index, 60, b)) for b in self.data.survey.bands])

    @param.depends("candidates", "cursor")
    def scores_text(self) -> str:
        """The shown candidate's scores (HTML)."""
        listing = self.candidates
        if self._ranker is None or listing is None or not len(listing):
            return ""
        row = listing.row(self.cursor)
        rank = int(row["rank"]) if "rank" in row else self._final_rank(int(row["index"]))
        return breakdown_html(row, self._ranker.scorers, rank)

    @param.depends("candidates", "cursor")
    def gallery_items(self) -> list[dict[str, Any]]:
        """The top candidates as gallery items, the shown one marked."""
        listing, index = self.candidates, self.current()
        if listing is None:
            return []
        return [
            {"index": int(r.index), "id": str(r.object_id), "url": self.data.thumb(int(r.index), 80),
             "caption": f"#{k + 1} · {getattr(r, self.rank_by):.3f}", "sub": "",
             "current": int(r.index) == index}
            for k, r in enumerate(listing.page(0, GALLERY_SIZE).itertuples())
        ]  # fmt: skip

    @param.depends("candidates", "cursor", watch=True)
    def _show(self) -> None:
        """The big cutout, previous/next and the table follow the list and the cursor."""
        listing, cursor, index = self.candidates, self.cursor, self.current()
        n = len(listing)
        with hold():
            self._prev.disabled = cursor <= 0
            self._next.disabled = cursor >= n - 1
            if index is None:
                self._stage.param.update(url="", object_id="", caption="", prefetch=[])
            else:
                upcoming = listing.page(cursor + 1, cursor + 3)["index"].astype(int).tolist()
                self._stage.param.update(
                    url=self.data.thumb(index, 256),
                    object_id=self.data.object_id(index),
                    prefetch=[self.data.thumb(i, 256) for i in upcoming],
                    caption=f"<code>{html.escape(self.data.object_id(index))}</code> · "
                    f"row {index:,}",
                )
            self._table.value = self._table_frame(listing.page(0, TABLE_ROWS))

    def _final_rank(self, row: int) -> int:
        """The shown object's rank among all by ``final`` (O(N), no survey-wide sort)."""
        with self._lock:
            ranked = self._ranked
        return self._ranker.rank_of(ranked, row) if len(ranked) else 0

    def _table_frame(self, listing: pd.DataFrame) -> pd.DataFrame:
        cols = ["rank", "index", "object_id", "final", "anomaly", *self._ranker.scorers, "interest"]
        cols = [c for c in cols if c in listing]
        out = listing[cols].copy()
        if "pred_class" in self.data.table:
            out.insert(
                3, "predicted", self.data.table["pred_class"].to_numpy()[out["index"].to_numpy()]
            )
        return out.round(3)

    def _top_ids(self) -> list[str]:
        """The ids of the top N candidates of the list shown (a collection to save)."""
        with self._lock:
            listing = self.candidates
        return listing.page(0, int(self.top_n))["object_id"].astype(str).tolist()

    # -- export ------------------------------------------------------------------------------
    @param.depends("fmt", watch=True)
    def _update_filename(self) -> None:
        self._download.filename = file_name(f"{self.data.name}-anomalies", self.fmt)

    def _export_file(self) -> io.BytesIO:
        with self._lock:
            listing = self.candidates
        if not len(listing):
            raise LatentError("no candidates to export")
        rows = listing.page(0, 10_000)
        catalog = self.data.table.iloc[rows["index"].to_numpy()].reset_index(drop=True)
        extra = [c for c in catalog.columns if c not in rows.columns]
        table = pd.concat([rows.reset_index(drop=True), catalog[extra]], axis=1)
        return table_bytes(table, self.fmt)

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        if self._ranker is None:
            return pn.Column(
                pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
                self._alert,
            )
        candidate = pn.Column(
            pn.Row(self._stage, pn.Column(self._bands, self._scores, sizing_mode="stretch_width")),
            pn.pane.Markdown("**How interesting is it?**", margin=(8, 10, 0, 10)),
            pn.FlexBox(*self._buttons),
            pn.Row(self._prev, self._next, self._similar, self._keys),
            self._ack,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px", "color": "#475569"}),
            self._alert,
            pn.FlexBox(self.scorer, self.hide_scored, self.team, self._fmt, self._download),
            self._ranking_note,
            self._status,
            pn.FlexBox(  # narrow windows: the gallery goes below the candidate, not off-screen
                candidate,
                pn.Column(heading("Top candidates"), self._gallery, width=490, sizing_mode="fixed"),
                sizing_mode="stretch_width",
            ),
            self._table,
            pn.Row(self._top_n, self._save),
            sizing_mode="stretch_width",
        )
