"""The file side of projects in the window: its file dialogs, the recent-projects list and the
question before opening a project another CellViewer holds. Each is a plain function of a
parent widget (the dialogs return what was chosen, None when cancelled), so the window only
wires them to its actions. Each dialog starts where the user was (cellviewer.ui.common.folders:
the last folder for that purpose, else beside the open project)."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from cellviewer.core.sources.suffixes import image_file_patterns
from cellviewer.core.store import SUFFIX as PROJECT_SUFFIX
from cellviewer.ui.common import folders
from cellviewer.ui.common.settings import app_settings

MAX_RECENT = 10
RECENT_KEY = "recent_projects"


def ask_new_project(parent: QWidget, project: str | None = None) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "New project",
                                          str(folders.start_folder("project", project)),
                                          f"CellViewer project (*{PROJECT_SUFFIX})")
    folders.remember("project", path)
    return path or None


def ask_open_project(parent: QWidget, project: str | None = None) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open project",
                                          str(folders.start_folder("project", project)),
                                          f"CellViewer project (*{PROJECT_SUFFIX});;"
                                          "All files (*)")
    folders.remember("project", path)
    return path or None


def ask_images(parent: QWidget, project: str | None = None) -> list[str]:
    paths, _ = QFileDialog.getOpenFileNames(parent, "Add images",
                                            str(folders.start_folder("images", project)),
                                            f"Images ({image_file_patterns()});;All files (*)")
    if paths:
        folders.remember("images", paths[0])
    return list(paths)


def ask_points_csv(parent: QWidget, project: str | None = None) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Import points CSV",
                                          str(folders.start_folder("points", project)),
                                          "CSV (*.csv);;All files (*)")
    folders.remember("points", path)
    return path or None


def confirm_open_in_use(parent: QWidget, error) -> bool:
    """Ask whether to open a project another CellViewer has open (a ProjectInUseError);
    True for "Open anyway". Cancel is the default, and what Escape or closing the box do."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Project already open", str(error),
                      QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName("project_in_use_box")
    if error.checkable:
        hint = ("If both change it, their edits and undo steps mix and work can be lost. "
                "Open it anyway only if that CellViewer is no longer working on it.")
    else:
        hint = ("It is open on another computer, so whether it is still in use cannot be "
                "checked from here. Open it anyway only if that CellViewer was closed or "
                "crashed; if both change it, work can be lost.")
    box.setInformativeText(hint)
    open_anyway = box.addButton("Open anyway", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    answer = box.clickedButton() is open_anyway
    box.deleteLater()
    return answer


def recent_projects() -> list[str]:
    """The projects opened last, newest first (kept in the settings)."""
    value = app_settings().value(RECENT_KEY, [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or []) if v]


def remember_recent(path: str) -> None:
    recent = [path] + [p for p in recent_projects() if p != path]
    app_settings().setValue(RECENT_KEY, recent[:MAX_RECENT])


def fill_recent_menu(menu: QMenu, open_path) -> None:
    """The recent projects as a menu's actions, each calling ``open_path(path)``."""
    menu.clear()
    recent = recent_projects()
    for p in recent:
        menu.addAction(p, lambda p=p: open_path(p))
    menu.setEnabled(bool(recent))
