"""The fake host of the tools' tests: a small real main window offering the part of
:class:`cellviewer.ui.host.Host` that a tool uses (panels, menus, the project session and its
store, the status bar, close guards, ``projectChanged``), for tests that do not need the whole
``MainWindow``."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu

from cellviewer.core.project.session import ProjectSession
from cellviewer.ui.host import CLOSE_PROJECT, QUIT, CloseGuard


class FakeHost(QMainWindow):
    projectChanged = Signal(object)

    def __init__(self, store=None) -> None:
        super().__init__()
        self.session = ProjectSession(lock_projects=False)
        self.session.attach(store, own=False)  # the test closes its stores
        self.guards: list[CloseGuard] = []
        self._menus: dict[str, QMenu] = {}
        self.statuses: list[str] = []

    def add_panel(self, dock: QDockWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea
                  ) -> QDockWidget:
        self.addDockWidget(area, dock)
        return dock

    def menu(self, title: str) -> QMenu:
        if title not in self._menus:
            self._menus[title] = self.menuBar().addMenu(title)
        return self._menus[title]

    def add_close_guard(self, guard: CloseGuard) -> None:
        self.guards.append(guard)

    @property
    def store(self):
        return self.session.store

    def current_store(self):
        return self.session.store

    def show_status(self, text: str, ms: int = 4000) -> None:
        self.statuses.append(text)
        self.statusBar().showMessage(text, ms)

    # what MainWindow does around its guards
    def set_store(self, store) -> None:
        self.session.attach(store, own=False)
        self.projectChanged.emit(store)

    def close_project(self) -> bool:
        if self.store is not None and not all(g(CLOSE_PROJECT) for g in self.guards):
            return False
        self.set_store(None)
        return True

    def closeEvent(self, event) -> None:
        if not all(g(QUIT) for g in self.guards):
            event.ignore()
            return
        super().closeEvent(event)
