"""Draw an :class:`~backend.explain.explain.Explanation` with matplotlib (Agg): the cutout,
the attribution maps per band, the residual map, the scorer bars and the exemplar ids; the
recorded region of an injected anomaly is outlined on every panel."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from backend.atomic import atomic_write
from backend.explain.explain import Explanation


def _display(image: np.ndarray) -> np.ndarray:
    """An asinh-stretched grey picture of the band sum (for the background panel)."""
    total = image.sum(axis=0)
    scale = np.nanpercentile(np.abs(total), 99.5) or 1.0
    return np.arcsinh(total / (0.05 * scale))


def _outline(ax, mask: np.ndarray | None) -> None:
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="lime", linewidths=0.8)


def _panel(ax, data: np.ndarray, title: str, mask: np.ndarray | None, cmap: str) -> None:
    ax.imshow(data, origin="lower", cmap=cmap, interpolation="nearest")
    _outline(ax, mask)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def draw(expl: Explanation):
    """The explanation figure (matplotlib ``Figure``)."""
    from matplotlib.figure import Figure

    maps: list[tuple[str, np.ndarray, str]] = [("cutout", _display(expl.image), "gray")]
    if expl.class_map is not None:
        for b, band in enumerate(expl.bands):
            maps.append((f"{expl.predicted}: {band}", np.abs(expl.class_map[b]), "inferno"))
    if expl.similarity_map is not None:
        maps.append(
            (f"similar to {expl.neighbour_id}", np.abs(expl.similarity_map).sum(0), "viridis")
        )
    if expl.residual is not None:
        maps.append(("AE residual", expl.residual.sum(0), "magma"))
    if expl.anomaly_map is not None:
        maps.append(("anomaly attribution", np.abs(expl.anomaly_map).sum(0), "magma"))
    cols = min(len(maps), 4)
    rows = -(-len(maps) // cols) + 1
    fig = Figure(figsize=(2.2 * cols, 2.2 * rows), dpi=100)
    for i, (title, data, cmap) in enumerate(maps):
        _panel(fig.add_subplot(rows, cols, i + 1), data, title, expl.mask, cmap)
    ax = fig.add_subplot(rows, 2, 2 * rows - 1)
    if expl.scorers:
        names = list(expl.scorers)
        ax.barh(names, [expl.scorers[n] for n in names], color="tab:orange")
        ax.set_xlim(0, 1)
        ax.set_title(f"scorers (anomaly {expl.anomaly_score or 0:.2f})", fontsize=7)
        ax.tick_params(labelsize=6)
    else:
        ax.axis("off")
    text = fig.add_subplot(rows, 2, 2 * rows)
    text.axis("off")
    lines = [f"{expl.object_id}  {expl.anomaly_type or ''}"]
    if expl.predicted:
        p = expl.probabilities
        lines.append(f"predicted {expl.predicted} ({p[expl.predicted]:.2f}), "
                     f"runner-up {expl.runner_up} ({p[expl.runner_up]:.2f})")  # fmt: skip
    for name, ids in expl.exemplars.items():
        lines.append(f"{name}: {', '.join(ids)}")
    if expl.ordinary_neighbours:
        lines.append(f"ordinary neighbours: {', '.join(expl.ordinary_neighbours)}")
    if expl.mask is not None:
        lines.append("green outline: recorded region of the injected anomaly")
    text.text(0, 1, "\n".join(lines), va="top", fontsize=6, family="monospace", wrap=True)
    fig.tight_layout()
    return fig


def explanation_png(expl: Explanation) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    draw(expl).savefig(buf, format="png")
    return buf.getvalue()


def save_figure(expl: Explanation, path: Path) -> Path:
    """Write the figure to ``path`` atomically (PNG, or whatever the suffix names)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    fig = draw(expl)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt))
    return path
