"""The file side of projects in the window: its file dialogs, the recent-projects list, the
question before opening a project another CellViewer holds and the one after a damaged project
was refused. Each is a plain function of a parent widget (the dialogs return what was chosen,
None when cancelled), so the window only wires them to its actions. Each dialog starts where the
user was (cellviewer.ui.common.folders: the last folder for that purpose, else beside the open
project). :class:`ProjectFileCare` keeps the open project's file safe in the background: its
backups (at open, then hourly while edits happen) and the full integrity check on demand, both
through ``ui/common/tasks.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from cellviewer.core.sources.suffixes import image_file_patterns
from cellviewer.core.store import SUFFIX as PROJECT_SUFFIX
from cellviewer.ui.common import folders
from cellviewer.ui.common.settings import app_settings
from cellviewer.ui.common.tasks import POOL, TaskRunner

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


def ask_cell_files(parent: QWidget, project: str | None = None) -> list[str]:
    """Files of cells to import: tables, GeoJSON (also compressed), HoVer-Net JSON."""
    from cellviewer.ui.common.import_dialog import import_file_filter

    paths, _ = QFileDialog.getOpenFileNames(parent, "Import cells",
                                            str(folders.start_folder("points", project)),
                                            import_file_filter())
    if paths:
        folders.remember("points", paths[0])
    return list(paths)


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


READ_ONLY, RESTORE = "read-only", "restore"


def ask_damaged_way_out(parent: QWidget, error, backups: list) -> str | None:
    """After a damaged project was refused (a ProjectDamagedError): open it read-only to export
    what can still be read (``READ_ONLY``), restore its newest backup (``RESTORE``; the damaged
    file is kept aside), or neither (None, the default and what Escape does)."""
    box = QMessageBox(QMessageBox.Icon.Critical, "Project file damaged", str(error),
                      QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName("project_damaged_box")
    if backups:
        newest = backups[0]
        box.setInformativeText(
            f"The newest backup is from {newest.made_at.astimezone():%Y-%m-%d %H:%M} "
            f"({newest.path}). Restoring it keeps the damaged file beside it, renamed; edits "
            "made after that backup are only in the damaged file.")
    else:
        box.setInformativeText("There is no backup of this project. Open it read-only to "
                               "export what can still be read.")
    read_only = box.addButton("Open read-only", QMessageBox.ButtonRole.AcceptRole)
    restore = (box.addButton("Restore the backup", QMessageBox.ButtonRole.DestructiveRole)
               if backups else None)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    clicked = box.clickedButton()
    box.deleteLater()
    if clicked is read_only:
        return READ_ONLY
    if restore is not None and clicked is restore:
        return RESTORE
    return None


class ProjectFileCare(QObject):
    """The open project's backups and its integrity check on demand, in the background.

    ``show_status(text)`` and ``report_error(title, text)`` tell the user (the window's); the
    window calls :meth:`project_opened` after opening, :meth:`edited` after each committed
    change and :meth:`check` for File → Check project file…"""

    def __init__(self, show_status: Callable[[str], None],
                 report_error: Callable[[str, str], None], parent: QObject | None = None,
                 *, interval_s: float | None = None) -> None:
        from cellviewer.core.store.backup import BACKUP_INTERVAL_S, BackupSchedule

        super().__init__(parent)
        self._show_status = show_status
        self._report_error = report_error
        self.schedule = BackupSchedule(BACKUP_INTERVAL_S if interval_s is None else interval_s)
        self.runner = TaskRunner(POOL, 1, self)
        self._path: Path | None = None
        self._backing_up = False
        self.last_backup = None  # the last BackupResult (tests, the status bar)
        self.last_check = None  # the last CheckResult

    def project_opened(self, store) -> None:
        """A project was opened (None: closed): back it up now if it can change."""
        self._path = Path(store.path) if store is not None and not store.read_only else None
        if store is None:
            return
        check = store.open_check
        if check is not None and not check.complete:
            self._show_status(f"{Path(store.path).name}: {check.summary}; File → Check "
                              "project file… runs the full check")
        if self._path is not None and self.schedule.opened():
            self._backup()

    def edited(self) -> None:
        """A change was committed: a backup when one is due (hourly while edits happen)."""
        if self._path is not None and self.schedule.edited():
            self._backup()

    def _backup(self) -> None:
        from cellviewer.core.store.backup import make_backup

        if self._backing_up or self._path is None:
            return
        self.schedule.started()
        self._backing_up = True
        path = self._path

        def done(result) -> None:
            self._backing_up = False
            self.last_backup = result
            if result.backup is None and "not changed" not in result.skipped:
                self._show_status(result.message)

        def failed(message: str) -> None:
            self._backing_up = False
            self._report_error("No backup made", message)

        self.runner.start(lambda state: make_backup(
            path, should_stop=state.is_interruption_requested), done=done, failed=failed)

    def check(self, path, done: Callable[[object], None] | None = None) -> None:
        """The full integrity check of ``path`` in the background; the outcome is shown (and
        given to ``done``)."""
        from cellviewer.core.store.integrity import check_project

        path = Path(path)
        self._show_status(f"Checking {path.name}…")

        def finished(result) -> None:
            self.last_check = result
            if result.ok:
                self._show_status(f"{path.name}: {result.summary}")
            else:
                self._report_error("Project file damaged",
                                   f"{path}: {result.summary}. Save what you need by "
                                   "exporting it, then restore a backup (File → Open, which "
                                   "offers it for a damaged project).")
            if done is not None:
                done(result)

        self.runner.start(lambda state: check_project(
            path, should_stop=state.is_interruption_requested), done=finished,
            failed=lambda message: self._report_error("Cannot check the project file",
                                                      message))

    def wait(self, msecs: int = 5000) -> bool:
        return self.runner.wait(msecs)

    def close(self, msecs: int = 5000) -> bool:
        """Stop what runs (a backup stops between steps) and wait for it."""
        return self.runner.close(msecs)


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
