"""Application settings (window layout, recent projects, user name) in QSettings.

``CELLVIEWER_SETTINGS_DIR`` points the settings at an INI file in a folder of its own; the test
suite sets it to a fresh temporary folder for every test.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

ORGANISATION = "CellViewer"
APPLICATION = "CellViewer"


def app_settings() -> QSettings:
    folder = os.environ.get("CELLVIEWER_SETTINGS_DIR")
    if folder:
        return QSettings(os.path.join(folder, "cellviewer.ini"), QSettings.Format.IniFormat)
    fmt, scope = QSettings.Format.IniFormat, QSettings.Scope.UserScope
    return QSettings(fmt, scope, ORGANISATION, APPLICATION)
