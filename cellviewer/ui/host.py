"""The contract between the main window and the tools that dock into it.

Tools (prediction, review, blur preview, training, export) are written against :class:`Host`,
never against ``MainWindow`` itself and never by probing it with ``getattr``: what a tool may
use is what is listed here. ``MainWindow`` implements it; tests of a tool may give it
``tests/cellviewer/ui/fake_host.py`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from PySide6.QtCore import Qt, SignalInstance
from PySide6.QtWidgets import QDockWidget, QMenu

from cellviewer.core.project.session import ProjectSession

#: What a close guard is asked about: the project is about to close, or the app to quit.
CLOSE_PROJECT, QUIT = "close-project", "quit"

#: ``guard(reason) -> bool``: False keeps the project open (the user chose Cancel).
CloseGuard = Callable[[str], bool]


class Host(Protocol):
    """What the main window offers its tools."""

    # Signals: projectChanged(store or None), imageChanged(image id, -1 none),
    # selectionChanged(list of cell ids), cellsChanged(), colorModeChanged(str).
    #: the open project, who edits it, its active model and the current image's cells
    session: ProjectSession
    view: Any  # the SlideView (its ``viewChanged`` signal: the visible area moved)
    close_action: Any  # File → Close project (tools insert their File actions before it)

    projectChanged: SignalInstance
    imageChanged: SignalInstance
    selectionChanged: SignalInstance
    cellsChanged: SignalInstance
    colorModeChanged: SignalInstance

    def add_panel(self, dock: QDockWidget,
                  area: Qt.DockWidgetArea = ...) -> QDockWidget: ...
    def tabify_with(self, name: str, dock: QDockWidget) -> None: ...
    def menu(self, title: str) -> QMenu: ...
    def add_close_guard(self, guard: CloseGuard) -> None: ...

    def current_store(self) -> Any: ...
    def current_image_id(self) -> int | None: ...
    def current_image_source(self) -> Any: ...
    def selected_cell_ids(self) -> list[str]: ...
    def select_cells(self, ids: Sequence[str]) -> None: ...
    def visible_cell_ids(self) -> list[str]: ...
    def centre_on_cell(self, cell_id: str, zoom: float | None = None) -> bool: ...
    def color_mode(self) -> str: ...
    def set_color_mode(self, mode: str) -> None: ...
    def set_prediction_overlay(self, ids: Sequence[str] | None,
                               classes: Sequence[int] | None) -> None: ...
    def undo(self) -> bool: ...
    def show_status(self, text: str, ms: int = 4000) -> None: ...
    def report_error(self, title: str, message: str) -> None: ...
