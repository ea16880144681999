"""The page at any width: the main area never grows past the window, and below
:data:`NARROW_PX` the sidebar starts folded and opens over the page (the header's ☰ button).

:data:`CSS` is the template's raw CSS (document level: the template's own elements);
:class:`SidebarFold` is an invisible component that folds the sidebar when the window is narrow.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

NARROW_PX = 1000

CSS = f"""
/* a flex item's min-width defaults to its content's: a wide gallery pushed the main area past
   the window (the overflow was hidden, clipping columns and buttons) */
#content {{ flex-wrap: nowrap; }}
#main {{ min-width: 0; flex: 1 1 0; overflow-x: auto; }}
@media (max-width: {NARROW_PX - 1}px) {{
  #sidebar.show, #sidebar.collapsing {{
    position: fixed; top: 56px; bottom: 0; left: 0; z-index: 1050;
    background: var(--bs-body-bg, #fff); box-shadow: 0 0 18px rgba(0, 0, 0, .25);
  }}
  #main {{ padding: 6px 8px 12px 8px; }}
}}
"""


class SidebarFold(JSComponent):
    """Invisible; folds the template's sidebar when the window is narrower than
    ``breakpoint`` pixels (at load, and when the window becomes that narrow)."""

    breakpoint = param.Integer(default=NARROW_PX, bounds=(0, None), doc="window width, px")

    _esm = """
    export function render({ model, el }) {
      const narrow = window.matchMedia(`(max-width: ${model.breakpoint - 1}px)`);
      const fold = () => {
        const side = document.getElementById("sidebar");
        if (!narrow.matches || !side || !side.classList.contains("show")) return;
        side.classList.remove("show");
        const toggle = document.getElementById("sidebar-toggle");
        if (toggle) toggle.setAttribute("aria-expanded", "false");
        window.dispatchEvent(new Event("resize"));  // plots take the width freed
      };
      fold();
      narrow.addEventListener("change", fold);
      const span = document.createElement("span");
      span.style.display = "none";
      return span;
    }
    """
