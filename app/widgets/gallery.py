"""A thumbnail gallery: pictures by URL (``/thumb/...``), clicks and +/- marks sent to Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import param
from panel.custom import JSComponent

GalleryAction = Callable[[str, int], None]
DETAILS_CLASS = "ls-object-details"  # the details panel a gallery's ``reveal_on_open`` names


class ThumbGallery(JSComponent):
    """Tiles of thumbnails with a caption; clicking a picture sends ``("open", index)``.

    ``items``: dicts with ``index``, ``id``, ``url`` and optional ``caption`` (an id: a long
    one is broken into lines of even length, not after its first 14 characters), ``sub``
    (under it; ``\\n`` starts a line), ``colour`` (border), ``mark`` ("pos"/"neg") and
    ``current`` (highlighted).
    ``actions`` adds buttons under each tile, e.g. ``["pos", "neg"]`` for similarity feedback.
    """

    items = param.List(default=[])
    size = param.Integer(default=96, bounds=(32, 512))
    actions = param.List(default=[])
    empty_text = param.String(default="Nothing to show.")
    reveal_new = param.Boolean(
        default=False, doc="Scroll the gallery into view when it shows other objects."
    )
    reveal_on_open = param.String(
        default="", doc="CSS class of an element to scroll into view when a picture is clicked."
    )

    _esm = """
    const LABELS = {pos: "+ like", neg: "- unlike"};
    function findDeep(node, cls) {  // through the shadow roots Panel's components live in
      for (const e of node.querySelectorAll("*")) {
        if (e.classList.contains(cls)) { return e; }
        if (e.shadowRoot) { const hit = findDeep(e.shadowRoot, cls); if (hit) { return hit; } }
      }
      return null;
    }
    export function render({ model, el }) {
      const root = document.createElement("div");
      root.className = "lsg";
      const idsOf = () => model.items.map((it) => it.id).join("|");
      let shown = idsOf();  // a gallery drawn again (e.g. its tab shown) does not scroll
      function reveal() {
        const ids = idsOf();
        const changed = ids !== shown;
        shown = ids;
        if (changed && ids && model.reveal_new) {
          setTimeout(() => root.scrollIntoView({block: "nearest"}), 50);
        }
      }
      function open(index) {
        model.send_msg({action: "open", index: index});
        if (model.reveal_on_open) {
          const target = findDeep(document, model.reveal_on_open);
          if (target) { target.scrollIntoView({block: "nearest"}); }
        }
      }
      function draw() {
        reveal();
        root.replaceChildren();
        if (!model.items.length) {
          const p = document.createElement("div");
          p.className = "lsg-empty";
          p.textContent = model.empty_text;
          root.appendChild(p);
          return;
        }
        for (const it of model.items) {
          const tile = document.createElement("div");
          tile.className = "lsg-tile" + (it.current ? " lsg-current" : "") +
            (it.mark ? " lsg-" + it.mark : "");
          tile.dataset.index = it.index;
          tile.dataset.objectId = it.id;
          tile.style.width = (model.size + 8) + "px";
          if (it.colour) { tile.style.borderColor = it.colour; }
          const img = document.createElement("img");
          img.src = it.url; img.width = model.size; img.height = model.size;
          img.loading = "lazy"; img.alt = it.id; img.title = it.id + " (click for details)";
          img.addEventListener("click", () => open(it.index));
          tile.appendChild(img);
          const cap = document.createElement("div");
          cap.className = "lsg-cap"; cap.textContent = it.caption || it.id;
          cap.title = cap.textContent;
          tile.appendChild(cap);
          if (it.sub) {
            const sub = document.createElement("div");
            sub.className = "lsg-sub"; sub.textContent = it.sub;
            tile.appendChild(sub);
          }
          if (model.actions.length) {
            const bar = document.createElement("div");
            bar.className = "lsg-bar";
            for (const a of model.actions) {
              const b = document.createElement("button");
              b.className = "lsg-btn lsg-btn-" + a + (it.mark === a ? " on" : "");
              b.textContent = LABELS[a] || a;
              b.addEventListener("click", (e) => {
                e.stopPropagation();
                const on = !b.classList.contains("on");  // show the mark at once
                bar.querySelectorAll(".lsg-btn").forEach((x) => x.classList.remove("on"));
                tile.classList.remove("lsg-pos", "lsg-neg");
                if (on) { b.classList.add("on"); tile.classList.add("lsg-" + a); }
                model.send_msg({action: a, index: it.index});
              });
              bar.appendChild(b);
            }
            tile.appendChild(bar);
          }
          root.appendChild(tile);
        }
      }
      draw();
      model.on(["items", "size", "actions", "empty_text"], draw);
      return root;
    }
    """

    _stylesheets: ClassVar[list[str]] = [
        """
        .lsg { display: flex; flex-wrap: wrap; gap: 6px; align-content: flex-start; }
        .lsg-empty { color: #6b7280; font-style: italic; padding: 8px 2px; }
        .lsg-tile { border: 2px solid transparent; border-radius: 6px; padding: 2px;
                    background: #f8fafc; box-sizing: border-box; }
        .lsg-tile img { display: block; border-radius: 4px; cursor: pointer; background: #111; }
        .lsg-tile img:hover { outline: 2px solid #f59e0b; }
        .lsg-current { border-color: #f59e0b !important; background: #fff7e6; }
        .lsg-pos { border-color: #16a34a !important; }
        .lsg-neg { border-color: #dc2626 !important; opacity: 0.7; }
        .lsg-cap { font: 11px/1.25 ui-monospace, monospace; color: #1f2937;
                   word-break: break-all; text-wrap: balance; margin-top: 2px; }
        .lsg-sub { font: 11px/1.25 system-ui, sans-serif; color: #6b7280;
                   overflow-wrap: anywhere; white-space: pre-line; }
        .lsg-bar { display: flex; gap: 2px; margin-top: 2px; }
        .lsg-btn { flex: 1; font-size: 10px; padding: 1px 0; border: 1px solid #cbd5e1;
                   border-radius: 3px; background: white; cursor: pointer; }
        .lsg-btn-pos.on { background: #16a34a; color: white; border-color: #16a34a; }
        .lsg-btn-neg.on { background: #dc2626; color: white; border-color: #dc2626; }
        """
    ]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._callbacks: list[GalleryAction] = []

    def on_action(self, callback: GalleryAction) -> None:
        """Call ``callback(action, index)`` when a tile is clicked ("open") or marked."""
        self._callbacks.append(callback)

    def _handle_msg(self, data: object) -> None:
        if not isinstance(data, dict) or "index" not in data:
            return
        try:
            index = int(data["index"])
        except (TypeError, ValueError):
            return
        action = str(data.get("action", "open"))
        for callback in self._callbacks:
            callback(action, index)
