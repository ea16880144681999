"""The detail panel of one object: pictures, catalog row, model outputs, scores and labels."""

from __future__ import annotations

import base64
import html
import math
import threading
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from app.data import ANOMALY, ANOMALY_RANK, SCORE_PREFIX, SurveyData
from app.labelling import object_labels
from app.ood import detail_html as ood_detail_html
from app.safe import guarded, in_thread, message_pane
from app.skylinks import links_html
from app.state import AppState

SKIP_CATALOG = {"object_id"}


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return "—"
        return f"{value:.{digits}g}"
    if value is None or (isinstance(value, str) and not value.strip()):
        return "—"
    return html.escape(str(value))


def sky_html(data: SurveyData, row: pd.Series) -> str:
    """Coordinates, with links to sky viewers (Legacy Survey, ESASky, SIMBAD) only when they
    are real sky positions."""
    if not {"ra", "dec"} <= set(row.index):
        return "<div class='lsd-note'>No sky coordinates in this survey's catalog.</div>"
    ra, dec = float(row["ra"]), float(row["dec"])
    if not (math.isfinite(ra) and math.isfinite(dec)):
        return "<div class='lsd-note'>No sky position for this object.</div>"
    where = f"RA {ra:.5f}°, Dec {dec:+.5f}°"
    if not data.has_real_sky:
        return (
            f"<div class='lsd-note'>{where}: <b>simulated coordinates</b> (GalSim demo survey), "
            "so there is no real sky to look at.</div>"
        )
    return f"<div>{where} · {links_html(ra, dec)}</div>"


def class_html(row: pd.Series, colours: dict[str, str]) -> str:
    """Predicted class with the top probabilities as bars, entropy and BALD."""
    if "pred_class" not in row.index:
        return ""
    probs = {c[2:]: float(row[c]) for c in row.index if c.startswith("p_")}
    top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
    bars = "".join(
        f"<div class='lsd-bar'><span>{html.escape(k)}</span><i style='width:{100 * v:.0f}%;"
        f"background:{colours.get(k, '#4c78a8')}'></i><b>{v:.2f}</b></div>"
        for k, v in top
    )
    unc = " · ".join(
        f"{name} {_fmt(row[col])}" for col, name in (("entropy", "entropy"), ("bald", "BALD"))
        if col in row.index
    )  # fmt: skip
    return f"<h4>Predicted class</h4>{bars}<div class='lsd-small'>uncertainty: {unc}</div>"


def emulated_html(data: SurveyData, row: pd.Series) -> str:
    """Emulated properties: mean ± sigma as an error bar on the survey's range, with the
    catalog value (simulation truth for the demo) as a diamond when the catalog has it."""
    names = [c.removesuffix("_mean") for c in row.index if c.endswith("_mean")]
    if not names:
        return ""
    lines = []
    for name in names:
        mean = float(row[f"{name}_mean"])
        sigma = float(row.get(f"{name}_sigma", np.nan))
        lo, hi = data.memo(("p1p99", name), lambda n=name: data.percentile_range(f"{n}_mean"))
        span = (hi - lo) or 1.0

        def pos(v: float, lo: float = lo, span: float = span) -> float:
            return float(np.clip((v - lo) / span, 0, 1) * 100)

        truth = row.get(name)
        marks = ""
        if math.isfinite(sigma):
            a, b = pos(mean - sigma), pos(mean + sigma)
            marks += f"<i class='lsd-err' style='left:{a:.1f}%;width:{max(b - a, 0.5):.1f}%'></i>"
        marks += f"<i class='lsd-mean' style='left:{pos(mean):.1f}%'></i>"
        true_text = "—"
        if isinstance(truth, float | int | np.floating) and math.isfinite(float(truth)):
            marks += f"<i class='lsd-true' style='left:{pos(float(truth)):.1f}%'></i>"
            true_text = _fmt(float(truth), 3)
        err = f" ± {_fmt(sigma, 2)}" if math.isfinite(sigma) else ""
        lines.append(
            f"<span>{html.escape(name)}</span><div class='lsd-track'>{marks}</div>"
            f"<b>{_fmt(mean, 3)}{err}</b><span class='lsd-small'>{true_text}</span>"
        )
    head = (
        "<span></span><span></span><span class='lsd-small'>emulated ± σ</span>"
        "<span class='lsd-small'>◆ catalog</span>"
    )
    note = "bars: ±1σ on the survey's 1st–99th percentile range; ◆ the catalog value"
    return (
        f"<h4>Emulated properties</h4><div class='lsd-emu'>{head}{''.join(lines)}</div>"
        f"<div class='lsd-small'>{note}</div>"
    )


def anomaly_html(data: SurveyData, row: pd.Series) -> str:
    if ANOMALY not in row.index:
        return ""
    parts = [
        f"{c.removeprefix(SCORE_PREFIX)} {_fmt(row[c])}"
        for c in row.index
        if c.startswith(SCORE_PREFIX)
    ]
    rank = row.get(ANOMALY_RANK)
    rank_text = f" · rank {int(rank):,} of {len(data):,}" if rank is not None else ""
    return (
        f"<h4>Anomaly</h4><div>combined score <b>{_fmt(row[ANOMALY])}</b>{rank_text}</div>"
        f"<div class='lsd-small'>per scorer (0–1, higher = stranger): {' · '.join(parts)}</div>"
    )


def labels_html(labels: pd.DataFrame) -> str:
    if labels.empty:
        return "<h4>Human labels</h4><div class='lsd-small'>none yet</div>"
    items = ", ".join(
        f"<b>{html.escape(str(r.value))}</b> by {html.escape(str(r.user))}"
        for r in labels.itertuples()
    )
    return f"<h4>Human labels</h4><div>{items}</div>"


def catalog_html(row: pd.Series, columns: list[str]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(c)}</th><td>{_fmt(row[c])}</td></tr>"
        for c in columns
        if c not in SKIP_CATALOG
    )
    return (
        f"<details><summary>Catalog row</summary><table class='lsd-cat'>{cells}</table></details>"
    )


def pictures_html(data: SurveyData, index: int, size: int = 176) -> str:
    bands = "".join(
        f"<figure><img src='{data.thumb(index, 72, b)}' width='72' height='72' alt='{b}'>"
        f"<figcaption>{html.escape(b)}</figcaption></figure>"
        for b in data.survey.bands
    )
    return (
        f"<div class='lsd-pics'><img class='lsd-rgb' src='{data.thumb(index, size)}' "
        f"width='{size}' height='{size}' alt='colour'><div class='lsd-bands'>{bands}</div></div>"
    )


def detail_html(data: SurveyData, index: int, labels: pd.DataFrame, colours: dict[str, str]) -> str:
    """The whole panel body for object ``index``."""
    row = data.table.iloc[int(index)]
    catalog_cols = list(data.survey.catalog.columns)
    return (
        f"<div class='lsd'><div class='lsd-title'>{html.escape(data.object_id(index))}"
        f"<span> row {int(index):,}</span></div>"
        + pictures_html(data, index)
        + sky_html(data, row)
        + class_html(row, colours)
        + emulated_html(data, row)
        + anomaly_html(data, row)
        + ood_detail_html(row, data.ood)
        + labels_html(labels)
        + catalog_html(row, catalog_cols)
        + "</div>"
    )


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def explanation_html(view: Any) -> str:
    """The explanation section of an :class:`backend.explain.view.ExplanationView`: the
    figure (the recorded region of an injected anomaly outlined in green) and its caption."""
    outlined = view.region_fraction is not None
    src = "data:image/png;base64," + base64.b64encode(view.png).decode("ascii")
    lines = []
    if view.predicted:
        lines.append(
            f"class maps: why <b>{html.escape(view.predicted)}</b> (runner-up "
            f"{html.escape(str(view.runner_up))})"
        )
    if view.neighbour_id:
        lines.append(f"similarity map: what looks like {html.escape(view.neighbour_id)}")
    region = ""
    if outlined:
        region = (
            f"<div class='lsd-region' data-region-fraction='{view.region_fraction:.4f}'>"
            f"<b>{html.escape(view.anomaly_type)}</b>: the simulator's recorded region "
            f"(outlined in green, {_pct(view.region_fraction)} of the cutout) holds "
            f"{_pct(view.residual_inside)} of the residual above the noise and "
            f"{_pct(view.attribution_inside)} of the anomaly attribution</div>"
        )
    return (
        f"<div class='lsd-explain' data-object-id='{html.escape(view.object_id)}' "
        f"data-recorded-region='{'outlined' if outlined else 'none'}'>"
        f"<h4>Why</h4><img class='lsd-explain-fig' src='{src}' alt='explanation'>"
        f"{region}<div class='lsd-small'>{' · '.join(lines)} · computed in "
        f"{1000 * view.seconds:.0f} ms</div></div>"
    )


def explanation_note(text: str) -> str:
    return f"<div class='lsd lsd-small lsd-explain-note'>{html.escape(text)}</div>"


DETAIL_CSS = """
.lsd { font: 13px/1.4 system-ui, sans-serif; color: #1f2937; }
.lsd h4 { font-size: 13px; margin: 10px 0 3px; color: #0b1a33; text-transform: uppercase;
          letter-spacing: .04em; }
.lsd-title { font: 600 15px ui-monospace, monospace; margin-bottom: 6px; }
.lsd-title span { font: 12px system-ui; color: #6b7280; margin-left: 6px; }
.lsd-pics { display: flex; gap: 8px; align-items: flex-start; margin-bottom: 6px; }
.lsd-rgb { border-radius: 6px; background: #0f1420; }
.lsd-bands { display: grid; grid-template-columns: repeat(2, 72px); gap: 4px; }
.lsd-bands figure { margin: 0; text-align: center; }
.lsd-bands img { border-radius: 3px; display: block; background: #000; }
.lsd-bands figcaption { font-size: 11px; color: #6b7280; }
.lsd-note { background: #fff7e6; border-left: 3px solid #f59e0b; padding: 3px 6px; }
.lsd-small { font-size: 11.5px; color: #6b7280; }
.lsd-bar { display: grid; grid-template-columns: 110px 1fr 40px; align-items: center; gap: 6px; }
.lsd-bar i { display: block; height: 10px; border-radius: 3px; }
.lsd-bar b { font-weight: 600; text-align: right; }
.lsd-emu { display: grid; grid-template-columns: 118px 1fr auto 62px; gap: 2px 8px;
           align-items: center; }
.lsd-track { position: relative; height: 12px; background: #eef2f7; border-radius: 6px; }
.lsd-track i { position: absolute; top: 0; height: 12px; }
.lsd-err { background: #93c5fd; border-radius: 6px; }
.lsd-mean { width: 2px; background: #1d4ed8; }
.lsd-true { width: 8px; height: 8px !important; top: 2px !important; margin-left: -4px;
            background: #f59e0b; transform: rotate(45deg); }
.lsd-cat { font-size: 12px; border-collapse: collapse; }
.lsd-cat th { text-align: left; color: #6b7280; font-weight: 500; padding: 1px 10px 1px 0; }
.lsd summary { cursor: pointer; margin-top: 10px; font-weight: 600; }
.lsd-explain img { max-width: 100%; border-radius: 4px; }
.lsd-region { border-left: 3px solid #22c55e; padding: 2px 6px; margin: 4px 0; }
"""


PLACEHOLDER = (
    "<div class='lsd lsd-small'>Click a point on the map or a thumbnail to see an object here: "
    "its pictures per band, catalog row, model predictions with their uncertainties, anomaly "
    "scores and labels.</div>"
)


class DetailPanel(pn.viewable.Viewer):
    """Shows ``state.picked``; buttons hand the object to the Similar and Label views."""

    data = param.ClassSelector(class_=SurveyData, doc="the survey shown")
    state = param.ClassSelector(class_=AppState, doc="the session's shared state")
    colours = param.Dict(default={}, doc="class name -> colour of the probability bars")
    labels_seen = param.Integer(
        default=0, doc="bumped when the picked object's labels changed (the body re-reads them)"
    )
    why = param.String(default="", doc="the picked object's explanation (HTML, escaped)")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._alert = message_pane()
        self._body = pn.pane.HTML(
            self.body_text, stylesheets=[DETAIL_CSS], sizing_mode="stretch_width"
        )
        self._similar = pn.widgets.Button(
            label="Find similar", color="primary", disabled=self.no_object, width=130
        )
        self._label = pn.widgets.Button(
            label="Label it", color="default", disabled=self.no_object, width=110
        )
        self._similar.on_click(guarded(self._alert)(lambda _: self._go("similar")))
        self._label.on_click(guarded(self._alert)(lambda _: self._go("label")))
        self._why = pn.pane.HTML(
            self.param.why, stylesheets=[DETAIL_CSS], sizing_mode="stretch_width"
        )
        self._why_lock = threading.Lock()
        self._why_for: int | None = None
        self._on_pick()

    def shown(self) -> int | None:
        """The row shown: the picked object when it is one of this survey's."""
        index = self.state.picked
        return index if index is not None and 0 <= index < len(self.data) else None

    @param.depends("state.picked")
    def no_object(self) -> bool:
        """Whether no object is shown (the buttons are disabled then)."""
        return self.shown() is None

    @param.depends("state.picked", "labels_seen", "colours")
    def body_text(self) -> str:
        """The panel's body for the object shown, else how to pick one (HTML)."""
        index = self.shown()
        if index is None:
            return PLACEHOLDER
        labels = object_labels(self.data.name, self.data.object_id(index))
        return detail_html(self.data, index, labels, self.colours)

    def _go(self, where: str) -> None:
        if self.state.picked is None:
            return
        if where == "similar":
            self.state.ask_similar(self.state.picked)
        else:
            self.state.ask_label(self.state.picked)

    @param.depends("state.labels_changed", watch=True)
    def _on_labels(self) -> None:
        """Re-read the labels when the object shown is the one whose labels changed."""
        index = self.shown()
        if index is not None and self.data.object_id(index) == self.state.last_labelled:
            self.labels_seen += 1

    @param.depends("state.picked", watch=True)
    def _on_pick(self) -> None:
        index = self.shown()
        if index is None:
            with self._why_lock:
                self._why_for = None
            self.why = ""
        else:
            self._start_explanation(index)

    def _start_explanation(self, index: int) -> None:
        """Compute the explanation on the server's thread pool; the page stays responsive and
        a result for an object no longer picked is dropped."""
        with self._why_lock:
            if self._why_for == index:
                return
            self._why_for = index
        self.why = explanation_note("Explaining this object…")
        in_thread(guarded(self._alert)(lambda: self._explain(index)))

    def _explain(self, index: int) -> None:
        from backend.errors import LatentSkyError
        from backend.explain.view import explain_for_app

        try:
            view = explain_for_app(self.data.name, self.data.object_id(index))
            body = explanation_html(view)
        except (LatentSkyError, FileNotFoundError) as exc:
            body = explanation_note(f"No explanation: {exc}")
        with self._why_lock:
            if self._why_for != index:
                return
        self.why = body

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self._similar, self._label, margin=(0, 0, 6, 0)),
            self._alert,
            self._body,
            self._why,
            sizing_mode="stretch_width",
        )
