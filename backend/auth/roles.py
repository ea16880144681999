"""Roles and what each may do: one ladder, one check (:func:`require`).

viewer    browse the map, galleries, thumbnails; search (uploads too)
labeller  + labels (and undoing their own), interest scores, collections (deleting their own)
curator   + retrain / fine-tune, activate versions, edit label schemas, import labels, cancel
          any job (a labeller may cancel only the jobs they asked for), delete any collection
admin     + users, surveys

The web server calls :func:`require` for every route and every Panel callback that reads or
changes something; :class:`AccessDenied` (a :class:`PermissionError`) carries the HTTP status
(401: nobody logged in, 403: the role is too low).
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.errors import UserError

ROLES: tuple[str, ...] = ("viewer", "labeller", "curator", "admin")

#: action -> the lowest role allowed to do it
ACTIONS: dict[str, str] = {
    "browse": "viewer",
    "search": "viewer",
    "label": "labeller",
    "interest": "labeller",
    "save_collection": "labeller",
    "cancel_own_job": "labeller",
    "retrain": "curator",
    "submit_job": "curator",
    "cancel_job": "curator",
    "activate": "curator",
    "edit_schema": "curator",
    "import_labels": "curator",
    "delete_collection": "curator",
    "users": "admin",
    "surveys": "admin",
}


class AccessDenied(PermissionError):
    """The request is refused: ``status`` 401 (log in first) or 403 (role too low)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0])


class RoleError(UserError, ValueError):
    """A role name that is not one of :data:`ROLES`."""


@dataclass(frozen=True)
class Account:
    """Who is asking: a name (None: the single local user of an unauthenticated server, whose
    requests name their user themselves) and a role."""

    name: str | None
    role: str

    def can(self, action: str) -> bool:
        return rank(self.role) >= rank(minimum_role(action))


def check_role(role: object) -> str:
    """``role`` as one of :data:`ROLES`, else :class:`RoleError`."""
    text = str(role).strip().lower() if isinstance(role, str) else ""
    if text not in ROLES:
        raise RoleError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return text


def rank(role: str) -> int:
    return ROLES.index(check_role(role))


def minimum_role(action: str) -> str:
    try:
        return ACTIONS[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r}") from None  # a bug, not the user's


def require(account: Account | None, action: str) -> Account:
    """``account`` when its role may do ``action``; else :class:`AccessDenied` (401 when there is
    no account, 403 when its role is too low)."""
    needed = minimum_role(action)
    if account is None:
        raise AccessDenied("log in first: this server requires authentication", 401)
    if rank(account.role) < rank(needed):
        who = account.name or "this user"
        raise AccessDenied(
            f"{who} is a {account.role}: {action.replace('_', ' ')} needs the role {needed} "
            "or higher (ask an admin)"
        )
    return account


def require_cancel(account: Account | None, owner: str | None) -> Account:
    """Cancelling a job: its owner needs labeller, anyone else curator."""
    if account is not None and account.name is not None and account.name == owner:
        return require(account, "cancel_own_job")
    return require(account, "cancel_job")
