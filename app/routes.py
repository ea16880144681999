"""HTTP routes beside the Panel app (``panel serve ... --plugins app.routes``).

``GET /thumb/<survey>/<index>.png[?size=N&band=B]`` serves a cached PNG rendering, so galleries
load pictures by URL instead of pushing bytes through the websocket. Rendering runs on a small
thread pool (zarr decompression and PNG encoding release the GIL), never on the event loop.

The JSON label API (``/api/labels``, :mod:`app.api`) is served by the same plugin. Loading it
in ``panel serve`` also checks authentication (:func:`app.serving.configure`): without
``LATENTSKY_AUTH`` the server only starts on localhost.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler

from app.api import ROUTES as API_ROUTES
from app.auth import authorize
from app.serving import configure
from app.surveys import get_survey
from backend.survey import SurveyError

configure()  # panel serve: refuse LATENTSKY_AUTH=none off localhost; install the basic login

MAX_THUMB_SIZE = 512
MAX_INDEX_DIGITS = 12
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="thumb")


def render_png(survey_name: str, index: int, size: int | None, band: str | None) -> bytes:
    """PNG bytes of one object (colour, or one band), from the survey store's cache."""
    survey = get_survey(survey_name)
    return survey.band_png(index, band, size) if band else survey.thumbnail_png(index, size)


class ThumbnailHandler(RequestHandler):
    """PNG of one object: colour composite, or one band with ``?band=``; viewers and up
    (:mod:`app.auth`: 401 without a login, 403 below viewer, when authentication is on)."""

    async def prepare(self) -> None:
        await authorize(self, "browse")

    async def get(self, survey_name: str, index: str) -> None:
        size = self.get_argument("size", None)
        band = self.get_argument("band", None)
        try:
            px = int(size) if size else None
            if px is not None and not 8 <= px <= MAX_THUMB_SIZE:
                raise ValueError
        except ValueError:
            raise HTTPError(400, f"size must be an integer in 8..{MAX_THUMB_SIZE}") from None
        if len(index) > MAX_INDEX_DIGITS:  # no survey has that many objects
            raise HTTPError(404, f"survey {survey_name}: no object {index[:20]}...")
        try:
            png = await IOLoop.current().run_in_executor(
                _POOL, render_png, survey_name, int(index), px, band
            )
        except SurveyError as exc:
            raise HTTPError(404, str(exc)) from None
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "private, max-age=86400")  # no shared caches: auth
        self.write(png)


def thumbnail_url(
    survey: str,
    index: int,
    size: int | None = None,
    band: str | None = None,
    stamp: str | None = None,
) -> str:
    """Relative URL of a thumbnail served by :class:`ThumbnailHandler`; ``stamp`` (ignored by
    the handler) changes the URL when a survey is rebuilt, so browsers do not show stale PNGs."""
    pairs = (("size", size), ("band", band), ("v", stamp))
    query = "&".join(f"{k}={v}" for k, v in pairs if v)
    return f"/thumb/{survey}/{int(index)}.png" + (f"?{query}" if query else "")


ROUTES = [
    (r"/thumb/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/(\d+)\.png", ThumbnailHandler, {}),
    *API_ROUTES,
]
