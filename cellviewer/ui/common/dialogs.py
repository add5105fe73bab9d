"""Small dialogs: errors that never block (so tests and batch work never hang on them), and the
user's name (asked by the project session once per launch, before the first edit).

:func:`show_error` opens a ``QMessageBox`` with ``open()`` (window-modal, returns at once), so a
caller keeps running and a test can find the box with ``window.findChildren(QMessageBox)``, read
it, and close it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox, QWidget

from cellviewer.core.project.users import clean_user, login_name
from cellviewer.ui.common.settings import app_settings

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


def saved_user() -> str:
    """The name kept in the settings from the last launch ("" when none)."""
    return str(app_settings().value(USER_KEY, "") or "")


def ask_user_name(parent: QWidget | None, suggestion: str) -> str | None:
    """Ask who is editing (once per launch; see cellviewer.core.project.session), pre-filled with
    ``suggestion`` (the name kept from last time, else the login name); the answer is kept for
    the next launch. None when the user cancels."""
    dialog = QInputDialog(parent)
    dialog.setObjectName("user_name_dialog")
    dialog.setWindowTitle("Your name")
    dialog.setLabelText("Every change you make is recorded with your name.\nName or initials:")
    dialog.setTextValue(suggestion or login_name())
    if dialog.exec() != QInputDialog.DialogCode.Accepted:
        dialog.deleteLater()
        return None
    name = clean_user(dialog.textValue())
    dialog.deleteLater()
    if name:
        app_settings().setValue(USER_KEY, name)
    return name
