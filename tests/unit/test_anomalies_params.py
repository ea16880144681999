"""Anomalies' list choices are typed params (issue 13): the widgets are made from them, and the
list, the header and the ranking note follow them whether the user or code sets them.
In-process on the tiny survey with its anomaly scores."""

from __future__ import annotations

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
    assert view._list.position_of(scored) is None
    view.hide_scored.value = False
    assert view.unscored_only is False and view._list.position_of(scored) is not None

    view.team.value = True  # everyone's scores: the note says so
    assert view.team_ranking and "the team's interest scores" in view._ranking_note.object
    assert len(view._list) == len(tiny_survey) and np.isfinite(view.current())
