"""A small real main window that offers the part of :class:`cellviewer.ui.host.Host` the
training tools use (panels, menus, the open store, the status bar, close guards,
``projectChanged``), for the training tests that do not need the whole ``MainWindow``."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu

from cellviewer.ui.host import CLOSE_PROJECT, QUIT, CloseGuard


class TrainingHost(QMainWindow):
    projectChanged = Signal(object)

    def __init__(self, store=None) -> None:
        super().__init__()
        self.store = store
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

    def current_store(self):
        return self.store

    def show_status(self, text: str, ms: int = 4000) -> None:
        self.statuses.append(text)
        self.statusBar().showMessage(text, ms)

    # what MainWindow does around its guards
    def set_store(self, store) -> None:
        self.store = store
        self.projectChanged.emit(store)

    def close_project(self) -> bool:
        if self.store is not None and not all(g(CLOSE_PROJECT) for g in self.guards):
            return False
        self.set_store(None)
        return True

    def closeEvent(self, event) -> None:  # noqa: N802
        if not all(g(QUIT) for g in self.guards):
            event.ignore()
            return
        super().closeEvent(event)
