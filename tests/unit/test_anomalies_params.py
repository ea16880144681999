"""Anomalies' list choices are typed params (issue 13): the widgets are made from them, and the
list, the header and the ranking note follow them whether the user or code sets them.
In-process on the tiny survey with its anomaly scores."""

from __future__ import annotations

import html

import numpy as np

from backend.survey import Survey


def test_the_list_follows_its_params_and_the_widgets_drive_them(tiny_survey: Survey) -> None:
    from app.data import load_survey_data
    from app.state import AppState
    from app.views.anomalies import AnomaliesView
    from backend.latent.pipeline import make_scores
    from backend.latent.service import clear_cache
    from tests.unit.test_latent_query import add_encoder

    add_encoder(tiny_survey)
    make_scores("tiny")
    clear_cache()
    view = AnomaliesView(data=load_survey_data("tiny"), state=AppState(survey="tiny", user="ana"))
    assert view.rank_by == "final" and view.unscored_only and not view.team_ranking
    assert set(view.scorer.options.values()) == set(view.param.rank_by.objects)
    assert "your own interest scores (ana)" in view._ranking_note.object

    scorer = next(v for v in view.param.rank_by.objects if v != "final")
    view.rank_by = scorer  # set in code: the widget and the list follow
    assert view.scorer.value == scorer
    ranked = view._ranker.ranking()
    best = int(ranked.sort_values(scorer, ascending=False)["index"].iat[0])
    assert view.current() == best

    view.scorer.value = "final"  # set by the user: the param and the list follow
    assert view.rank_by == "final"
    assert view.current() == int(ranked["index"].iat[0])

    view.give(5)  # scored: hidden while unscored_only, listed again without it
    scored = int(ranked["index"].iat[0])
    assert view.candidates.position_of(scored) is None
    view.hide_scored.value = False
    assert view.unscored_only is False and view.candidates.position_of(scored) is not None

    view.team.value = True  # everyone's scores: the note says so
    assert view.team_ranking and "the team's interest scores" in view._ranking_note.object
    assert len(view.candidates) == len(tiny_survey) and np.isfinite(view.current())


def test_the_candidate_panes_follow_the_cursor_and_the_list(tiny_survey: Survey) -> None:
    """The candidate shown is ``cursor`` in ``candidates``: the cutout, band strip, score
    breakdown, header, gallery marker and previous/next follow it however it moves; the export
    format and top N are params too."""
    from app.data import load_survey_data
    from app.state import AppState
    from app.views.anomalies import AnomaliesView, band_strip, breakdown_html, interest_ack
    from backend.latent.pipeline import make_scores
    from backend.latent.service import clear_cache
    from tests.unit.test_latent_query import add_encoder

    add_encoder(tiny_survey)
    make_scores("tiny")
    clear_cache()
    data = load_survey_data("tiny")
    view = AnomaliesView(data=data, state=AppState(survey="tiny", user="<b>ana</b>"))
    listing = view.candidates
    assert view.cursor == 0 and view._prev.disabled and not view._next.disabled

    def shown_is(position: int) -> None:
        row = listing.row(position)
        index = int(row["index"])
        assert view.current() == index
        assert view._stage.object_id == data.object_id(index)
        assert f"showing #{position + 1} of this list" in view._status.object
        assert f"<b>{float(row['final']):.3f}</b>" in view._scores.object
        assert html.escape(data.thumb(index, 60, data.survey.bands[0])) in view._bands.object
        marked = [item["index"] for item in view._gallery.items if item["current"]]
        assert marked == [index]

    shown_is(0)
    view.cursor = 3  # set in code
    shown_is(3)
    assert not view._prev.disabled
    view.move(-1)  # the previous button / left arrow
    shown_is(2)
    view._on_key("ArrowRight")
    shown_is(3)
    view._gallery_action("open", int(listing.row(7)["index"]))  # a click in the gallery
    shown_is(7)
    view.cursor = len(listing) - 1
    assert view._next.disabled

    view.give(4)  # scored: re-ranked, the list is new and the panes follow it
    assert view.candidates is not listing and "list re-ranked." in view._ack.object
    assert "&lt;b&gt;ana&lt;/b&gt;" in view._ack.object
    listing = view.candidates
    shown_is(view.cursor)
    assert "1 scored so far" in view._status.object

    view._fmt.value = "FITS"  # the widget drives the param and the file name
    assert view.fmt == "FITS" and view._download.filename == "tiny-anomalies.fits"
    view.top_n = 3
    assert view._top_n.value == 3 and len(view._top_ids()) == 3

    hostile = "<img src=x onerror=alert(1)>"
    assert "<img src=x" not in band_strip([(hostile, "/t?a=1&b=2")])
    assert "<img src=x" not in interest_ack(hostile, 5, hostile, reranked=True)
    row = listing.row(0)
    assert "rank 1 of all objects" in breakdown_html(row, view._ranker.scorers, 1)
