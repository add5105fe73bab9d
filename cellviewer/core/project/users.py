"""Who is editing: one notion of the current user for the app, the headless commands and the
store.

- The app asks once per launch, before the first edit of any kind, pre-filled with the name kept
  in its settings (see :class:`cellviewer.core.project.session.ProjectSession`).
- Headless commands take ``--user``, else ``CELLVIEWER_USER``, else refuse (:func:`headless_user`).
- A store opened by a script records ``CELLVIEWER_USER`` or the login name (:func:`default_user`).
"""

from __future__ import annotations

import getpass
import os

ENV_VAR = "CELLVIEWER_USER"


class NoUserError(Exception):
    """An edit was refused because nobody said who is making it."""


def env_user() -> str | None:
    """``CELLVIEWER_USER`` when set to a non-empty name."""
    name = os.environ.get(ENV_VAR, "").strip()
    return name or None


def login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return ""


def default_user() -> str:
    """``CELLVIEWER_USER``, else the login name, else "unknown" (scripts and tests)."""
    return env_user() or login_name() or "unknown"


def clean_user(name: str | None) -> str | None:
    """A usable name (stripped, non-empty, one line), or None."""
    name = " ".join(str(name or "").split())
    return name or None


def headless_user(explicit: str | None) -> str:
    """The user of a headless command that changes a project: ``--user``, else
    ``CELLVIEWER_USER``; otherwise :class:`NoUserError` naming both."""
    name = clean_user(explicit) or env_user()
    if not name:
        raise NoUserError(f"who is making this change? Pass --user NAME or set {ENV_VAR}")
    return name
