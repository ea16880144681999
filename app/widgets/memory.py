"""Remembers a value in the browser's localStorage (the user name survives page reloads)."""

from __future__ import annotations

import param
from panel.custom import JSComponent


class BrowserMemory(JSComponent):
    """Invisible; ``value`` is loaded from ``localStorage[key]`` on first render and saved on
    every change."""

    key = param.String(default="latentsky.user")
    value = param.String(default="")

    _esm = """
    export function render({ model, el }) {
      try {
        const saved = window.localStorage.getItem(model.key);
        if (saved && saved !== model.value) { model.value = saved; }
      } catch (e) { /* storage disabled: nothing to remember */ }
      model.on("value", () => {
        try { window.localStorage.setItem(model.key, model.value); } catch (e) {}
      });
      const span = document.createElement("span");
      span.style.display = "none";
      return span;
    }
    """
