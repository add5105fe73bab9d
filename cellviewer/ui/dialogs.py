"""Small dialogs: errors that never block (so tests and batch work never hang on them), and the
user's name, asked once.

:func:`show_error` opens a ``QMessageBox`` with ``open()`` (window-modal, returns at once), so a
caller keeps running and a test can find the box with ``window.findChildren(QMessageBox)``, read
it, and close it.
"""

from __future__ import annotations

import getpass
import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox, QWidget

from cellviewer.ui.settings import app_settings

USER_KEY = "user/name"


def show_error(parent: QWidget | None, title: str, text: str, detail: str = "") -> QMessageBox:
    """A warning box naming what failed and why; returns the (already open) box."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                      QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("error_box")
    if detail:
        box.setInformativeText(detail)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    box.open()
    return box


def current_user(parent: QWidget | None = None, ask: bool = True) -> str:
    """Who is editing: ``CELLVIEWER_USER`` if set, else the name kept in the settings, else asked
    once (defaulting to the login name) and kept."""
    env = os.environ.get("CELLVIEWER_USER")
    if env:
        return env
    settings = app_settings()
    name = str(settings.value(USER_KEY, "") or "")
    if name:
        return name
    try:
        default = getpass.getuser()
    except Exception:  # no login name (some containers): the user types one
        default = ""
    if ask:
        text, ok = QInputDialog.getText(
            parent, "Your name",
            "Every label you set is recorded with your name.\nName or initials:",
            text=default)
        name = text.strip() if ok else ""
    name = name or default or "unknown"
    settings.setValue(USER_KEY, name)
    return name
