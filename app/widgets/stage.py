"""A large cutout shown by URL, with the next pictures preloaded so the swap is instant.

After each new picture has loaded and decoded, the component sets ``data-shown`` on itself and
dispatches ``latentsky:shown`` on ``window`` (``detail.object_id``): the browser tests and the
P6 benchmark time "label -> next object on screen" from the key press to that event.
"""

from __future__ import annotations

from typing import ClassVar

import param
from panel.custom import JSComponent


class CutoutStage(JSComponent):
    """One big picture (``url``) plus hidden preloads of ``prefetch`` URLs."""

    def __init__(self, **params: object) -> None:
        size = int(params.get("size", self.param.size.default))
        params.setdefault("width", size + 4)
        params.setdefault("height", size + 30)
        super().__init__(**params)

    url = param.String(default="")
    object_id = param.String(default="")
    prefetch = param.List(default=[])
    size = param.Integer(default=320, bounds=(64, 1024))
    caption = param.String(default="")

    _esm = """
    export function render({ model, el }) {
      const wrap = document.createElement("div");
      wrap.className = "lss";
      const img = document.createElement("img");
      img.className = "lss-img";
      const cap = document.createElement("div");
      cap.className = "lss-cap";
      wrap.append(img, cap);
      let cache = [];
      function prefetch() {
        cache = model.prefetch.map((u) => { const i = new Image(); i.src = u; return i; });
      }
      let current = "";
      function show() {
        const id = model.object_id, url = model.url;
        img.width = model.size; img.height = model.size;
        cap.innerHTML = model.caption;
        if (!url) { img.removeAttribute("src"); img.alt = ""; current = ""; return; }
        const key = url + "|" + id;
        if (key === current) { return; }
        current = key;
        img.alt = id;
        if (img.getAttribute("src") !== url) { img.src = url; }
        img.decode().catch(() => null).then(() => {
          if (current !== key) return;  // a newer object arrived meanwhile
          wrap.dataset.shown = id;
          window.dispatchEvent(new CustomEvent("latentsky:shown",
            {detail: {object_id: id, t: performance.now()}}));
        });
      }
      show(); prefetch();
      model.on(["url", "object_id", "size"], show);
      model.on("caption", () => { cap.innerHTML = model.caption; });
      model.on("prefetch", prefetch);
      return wrap;
    }
    """

    _stylesheets: ClassVar[list[str]] = [
        """
        .lss { display: inline-block; }
        .lss-img { display: block; border-radius: 6px; background: #0f1420;
                   image-rendering: auto; box-shadow: 0 1px 4px rgba(0,0,0,.25); }
        .lss-cap { font: 13px system-ui, sans-serif; color: #334155; margin-top: 6px; }
        """
    ]
