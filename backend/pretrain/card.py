"""The general encoder's model card: ``card.json`` (written by ``pretrain``, metrics added by the
benchmarks that measure it) rendered as ``card.md`` beside the weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write, atomic_write_json


def _rows(data: dict[str, Any]) -> list[str]:
    return [
        f"| {k} | {json.dumps(v) if isinstance(v, dict | list) else v} |" for k, v in data.items()
    ]


def render_card(card: dict[str, Any]) -> str:
    """Markdown: what it is, data, augmentations, training, metrics, how to reproduce."""
    corpus = card.get("corpus", {})
    lines = [
        f"# {card.get('name', 'general encoder')}: LatentSky's general galaxy encoder",
        "",
        f"{card.get('architecture', '')}; {card.get('parameters', 0):,} parameters. Input: "
        f"{card.get('input', {}).get('size')}x{card.get('input', {}).get('size')} colour "
        "composites (R, G, B in [0, 1]); any survey reaches it through an input adapter "
        "(`backend/modelling/general.py`): colour pictures are cropped and resampled, "
        "multi-band cutouts become a Lupton composite with the survey's display mapping.",
        "",
        "## Data",
        "",
        f"{corpus.get('n_images', 0):,} images (`{corpus.get('path', '')}`):",
        "",
        "| source | preset | images |",
        "| --- | --- | --- |",
        *[f"| {r['source']} | {r['preset']} | {r['n']:,} |" for r in corpus.get("by_source", [])],
        "",
        "Simulated galaxies come from the demo simulator (GalSim bulge + disk Sérsic profiles, "
        "arms, bars, dust, mergers, neighbours, stars, trails and detector artefacts at 5%) "
        "rendered with each preset's pixel scale, seeing, depth and bands "
        "(`backend/pretrain/presets.py`). Real images are used without their labels.",
        "",
        "## Augmentations",
        "",
        "| parameter | value |",
        "| --- | --- |",
        *_rows(card.get("augmentations", {})),
        "",
        "No flips: the representation keeps mirror-asymmetric information (spiral winding).",
        "",
        "## Training",
        "",
        "| | |",
        "| --- | --- |",
        *_rows(card.get("training", {})),
        "",
        "## Metrics",
        "",
    ]
    metrics = card.get("metrics", {})
    if not metrics:
        lines.append("None recorded yet (`bench/bench_gz1.py --card ...` adds them).")
    for name, block in metrics.items():
        lines += [f"### {name}", "", "| | |", "| --- | --- |", *_rows(block), ""]
    if card.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in card["notes"]], ""]
    lines += ["", "## Reproduce", "", "```bash", card.get("corpus_command", ""),
              card.get("command", ""), "```", ""]  # fmt: skip
    return "\n".join(lines)


def write_card(folder: Path, card: dict[str, Any]) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "card.json", card)
    text = render_card(card)
    atomic_write(folder / "card.md", lambda tmp: tmp.write_text(text))


def add_metrics(folder: Path, name: str, metrics: dict[str, Any]) -> None:
    """Record a benchmark's figures in the card (replacing that benchmark's earlier ones)."""
    path = Path(folder) / "card.json"
    card = json.loads(path.read_text())
    card.setdefault("metrics", {})[name] = metrics
    write_card(folder, card)
