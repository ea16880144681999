"""Work-arounds for Panel behaviours the app must not have (checked with Panel 1.9)."""

from __future__ import annotations

from typing import Any


def keep_stylesheets_local() -> None:
    """Never point a stylesheet at the CDN when the server serves Panel's resources itself.

    Panel re-points a pane's ``loading.css`` at ``cdn.holoviz.org`` when it updates a model
    that is not attached to a document (a pane in a hidden dynamic tab); the browser fetches it
    when the tab is shown again. LatentSky must load nothing from outside the server.
    """
    import panel.reactive as reactive
    from panel.io import resources

    if getattr(reactive.patch_stylesheet, "latentsky", False):
        return
    original = resources.patch_stylesheet

    def patched(stylesheet: Any, dist_url: str) -> None:
        if dist_url == resources.CDN_DIST and not resources.use_cdn():
            dist_url = resources.get_dist_path(cdn=False)
        original(stylesheet, dist_url)

    patched.latentsky = True  # type: ignore[attr-defined]
    reactive.patch_stylesheet = patched
