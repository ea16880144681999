"""Keyboard shortcuts for a view: a visible hint whose document-level listener is live only
while the hint is on screen (so each tab's keys act only in that tab)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import param
from panel.custom import JSComponent

KeyCallback = Callable[[str], None]


class KeyListener(JSComponent):
    """Sends the keys in ``keys`` (``KeyboardEvent.key`` names) to Python while visible.

    Keys typed into text fields, with Ctrl/Alt/Meta held, or auto-repeated are ignored.
    """

    keys = param.List(default=[])
    hint = param.String(default="")

    _esm = """
    export function render({ model, el }) {
      const box = document.createElement("div");
      box.className = "lsk";
      box.innerHTML = model.hint;
      model.on("hint", () => { box.innerHTML = model.hint; });
      const typing = (t) => t && (t.isContentEditable ||
        ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
      const handler = (e) => {
        if (e.repeat || e.ctrlKey || e.altKey || e.metaKey) return;
        if (!model.keys.includes(e.key)) return;
        if (typing(e.composedPath()[0])) return;
        if (!box.isConnected || box.offsetParent === null) return;  // tab not shown
        e.preventDefault();
        model.send_msg({key: e.key, t: performance.now()});
      };
      document.addEventListener("keydown", handler);
      model.on("remove", () => document.removeEventListener("keydown", handler));
      return box;
    }
    """

    _stylesheets: ClassVar[list[str]] = [
        """
        .lsk { font: 12px system-ui, sans-serif; color: #475569; padding: 2px 0; }
        .lsk kbd { border: 1px solid #cbd5e1; border-bottom-width: 2px; border-radius: 4px;
                   padding: 0 4px; font: 11px ui-monospace, monospace; background: #f8fafc;
                   color: #0b1a33; }
        """
    ]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._callbacks: list[KeyCallback] = []

    def on_key(self, callback: KeyCallback) -> None:
        """Call ``callback(key)`` for each key press."""
        self._callbacks.append(callback)

    def _handle_msg(self, data: object) -> None:
        key = data.get("key") if isinstance(data, dict) else None
        if key in self.keys:
            for callback in self._callbacks:
                callback(key)


def kbd(key: str) -> str:
    """HTML of a key cap."""
    return f"<kbd>{key}</kbd>"
