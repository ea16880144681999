"""HTTP routes beside the Panel app (``panel serve ... --plugins app.routes``).

``GET /thumb/<survey>/<index>.png[?size=N&band=B]`` serves a cached PNG rendering, so galleries
load pictures by URL instead of pushing bytes through the websocket.
"""

from __future__ import annotations

from tornado.web import HTTPError, RequestHandler

from app.surveys import get_survey
from backend.survey import SurveyError

MAX_THUMB_SIZE = 512


class ThumbnailHandler(RequestHandler):
    """PNG of one object: colour composite, or one band with ``?band=``."""

    def get(self, survey_name: str, index: str) -> None:
        size = self.get_argument("size", None)
        band = self.get_argument("band", None)
        try:
            px = int(size) if size else None
            if px is not None and not 8 <= px <= MAX_THUMB_SIZE:
                raise ValueError
        except ValueError:
            raise HTTPError(400, f"size must be an integer in 8..{MAX_THUMB_SIZE}") from None
        try:
            survey = get_survey(survey_name)
            i = int(index)
            png = survey.band_png(i, band, px) if band else survey.thumbnail_png(i, px)
        except SurveyError as exc:
            raise HTTPError(404, str(exc)) from None
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.write(png)


def thumbnail_url(survey: str, index: int, size: int | None = None, band: str | None = None) -> str:
    """Relative URL of a thumbnail served by :class:`ThumbnailHandler`."""
    query = "&".join(f"{k}={v}" for k, v in (("size", size), ("band", band)) if v)
    return f"/thumb/{survey}/{int(index)}.png" + (f"?{query}" if query else "")


ROUTES = [(r"/thumb/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/(\d+)\.png", ThumbnailHandler, {})]
