"""Shared state of one browser session: survey, picked object, user, and requests between views.

Views never call each other; they watch this object. ``ask_similar`` / ``ask_label`` switch tab
and hand an object over (the Similar and Label views watch ``similar_from`` / ``label_from``).
``share_selection`` publishes a map selection (the Explore map's or the Sky view's) to the other.
"""

from __future__ import annotations

import param

TABS = ("explore", "similar", "anomalies", "label", "models", "collections", "sky")
DEFAULT_USER = "anonymous"


class AppState(param.Parameterized):
    """What the views of one session share."""

    survey = param.String(default="", doc="name of the survey shown")
    picked = param.Integer(default=None, allow_None=True, doc="row index of the picked object")
    user = param.String(default=DEFAULT_USER, doc="name that labels and scores are stored under")
    tab = param.Selector(default="explore", objects=list(TABS))
    similar_from = param.Integer(default=None, allow_None=True, doc="object to search from")
    label_from = param.Integer(default=None, allow_None=True, doc="object to label next")
    label_list = param.List(default=[], item_type=int, doc="objects to label next, in order")
    labels_changed = param.Integer(default=0, doc="bumped after a label is stored or undone")
    last_labelled = param.String(default="", doc="object id of the latest label change")
    retrain_news = param.String(
        default="", doc="HTML (escaped): a retrain or fine-tune finished without activation"
    )

    selection = param.Parameter(
        default=None,
        doc="the objects selected on a map (an app.selection.Rows), None when nothing is",
    )
    selection_from = param.String(default="", doc="where the selection was made: explore or sky")

    def share_selection(self, rows: object | None, where: str) -> None:
        """Publish the selection made on the ``where`` map (``rows``: an
        :class:`app.selection.Rows`; None or empty clears it) for the other maps."""
        self.selection_from = where  # set first: watchers of ``selection`` read it
        self.selection = rows  # an object param: every assignment is an event

    def pick(self, index: int | None) -> None:
        """Make ``index`` the picked object (the detail panels follow)."""
        self.picked = None if index is None else int(index)

    def ask_similar(self, index: int) -> None:
        """Open the Similar view searching from ``index``."""
        self.pick(index)
        self.similar_from = int(index)
        self.param.trigger("similar_from")
        self.tab = "similar"

    def ask_label(self, index: int) -> None:
        """Open the Label view on ``index``."""
        self.pick(index)
        self.label_from = int(index)
        self.param.trigger("label_from")
        self.tab = "label"

    def ask_label_list(self, indices: list[int]) -> None:
        """Open the Label view with ``indices`` at the front of its queue, in order."""
        self.label_list = [int(i) for i in indices]
        self.param.trigger("label_list")
        self.tab = "label"

    def labelled(self, object_id: str) -> None:
        """Tell the other views that the labels of ``object_id`` changed."""
        self.last_labelled = str(object_id)
        self.labels_changed += 1

    @property
    def user_name(self) -> str:
        """The user name, stripped, never empty."""
        return (self.user or "").strip()[:256] or DEFAULT_USER
