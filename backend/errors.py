"""LatentSky's exceptions: one base, and the errors whose message is the whole story.

:class:`UserError` is a mistake the user can fix (a bad name, a missing survey, a malformed
setting): the CLI prints ``error: <message>`` and exits 2, the web app shows the message. Each
package's user-facing errors (``SurveyError``, ``LabelError``, ``RegistryError``, ...) subclass
it, keeping their other bases (``ValueError``, ``FileNotFoundError``) so that existing ``except``
clauses still catch them. ``models/`` never imports ``backend/``: its ``models.errors.ModelError``
is mapped to the same handling by the CLI.
"""

from __future__ import annotations


class LatentSkyError(Exception):
    """Base of LatentSky's own exceptions."""


class UserError(LatentSkyError):
    """An error whose message is the whole story for the user (no traceback)."""
