"""Plugging the annotators' tools into the main window (through its Host surface).

``install(window)`` adds:

- File → Copy for annotator… and File → Merge project… (before File → Close project);
- Analyze → Annotator agreement… (the agreement window);
- Edit → Roles… (annotator, checker, pathologist, kept with their names);
- the "Annotators" dock, tabbed with the Review queue: the conflicts and pathologist queues;
- each annotator's label of the selected cell in the cell details, read in the background
  (it reads the cell's history, and the cells a merge matched to it).

Long work (copying, merging, the agreement figures, the queues) runs through
:mod:`cellviewer.ui.common.tasks`; the decisions are the core's (:mod:`cellviewer.core.merge`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget

from cellviewer.ui.annotators.merging import MergeFlow
from cellviewer.ui.annotators.protocol_panel import ProtocolPanel
from cellviewer.ui.common.tasks import NEWEST, POOL, TaskRunner

DETAILS_MS = 30  # selection changes arriving together read the annotators once


def _annotators_of(path: Path, cell: str) -> tuple[dict[str, str], int]:
    """A worker's job: the cell's labels by annotator and its open conflicts."""
    from cellviewer.core.merge.agreement import cell_annotator_labels
    from cellviewer.core.store import ProjectStore

    with ProjectStore.open(path, readonly=True) as ro:
        return cell_annotator_labels(ro, cell), len(ro.conflicts(cell_uuid=cell))


class AnnotatorTools(QObject):
    """Everything ``install`` adds (see the module docstring). ``agreement_computed(list)``:
    the agreement window has shown the figures of a scope (its Agreements)."""

    agreement_computed = Signal(object)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.merge_flow = MergeFlow(window)
        self.copy_runner = TaskRunner(POOL, 1, self)
        self.details_runner = TaskRunner(NEWEST, 1, self)
        self.copy_dialog = None
        self.agreement_window = None
        self.roles_dialog = None

        self.panel = ProtocolPanel(window)
        self.dock = QDockWidget("Annotators", window)
        self.dock.setObjectName("annotators_dock")
        self.dock.setWidget(self.panel)
        window.add_panel(self.dock, Qt.DockWidgetArea.RightDockWidgetArea)
        window.tabify_with("review", self.dock)
        self.panel.rolesRequested.connect(self.edit_roles)

        file_menu = window.menu("&File")
        self.copy_action = QAction("Copy for a&nnotator…", window)
        self.copy_action.setStatusTip("A copy of the project for one annotator, which File → "
                                      "Merge project… brings back")
        self.copy_action.triggered.connect(lambda _c=False: self.ask_copy())
        self.merge_action = QAction("&Merge project…", window)
        self.merge_action.setStatusTip("Merge annotators' copies into this project (three "
                                       "ways; one undoable step)")
        self.merge_action.triggered.connect(lambda _c=False: self.merge_flow.ask_and_merge())
        before = window.close_action
        file_menu.insertAction(before, self.copy_action)
        file_menu.insertAction(before, self.merge_action)
        file_menu.insertSeparator(before)
        self.agreement_action = QAction("Annotator &agreement…", window)
        self.agreement_action.setStatusTip("Percent agreement, Cohen's and Fleiss' kappa and "
                                           "confusion matrices of the annotators")
        self.agreement_action.triggered.connect(lambda _c=False: self.show_agreement())
        window.menu("&Analyze").addAction(self.agreement_action)
        self.roles_action = QAction("R&oles…", window)
        self.roles_action.triggered.connect(lambda _c=False: self.edit_roles())
        window.menu("&Edit").addAction(self.roles_action)

        self._details_timer = QTimer(self, singleShot=True, interval=DETAILS_MS)
        self._details_timer.timeout.connect(self.refresh_details)
        window.selectionChanged.connect(lambda _ids: self._details_timer.start())
        window.session.events.store_changed.connect(self._on_store_changed)
        window.session.events.project.connect(lambda _s: self._update_enabled())
        self._update_enabled()

    # --- following the project ---------------------------------------------------------
    def _update_enabled(self) -> None:
        has = self.window.current_store() is not None
        for action in (self.copy_action, self.merge_action, self.agreement_action,
                       self.roles_action):
            action.setEnabled(has)

    def _on_store_changed(self, event: Any) -> None:
        if event.kinds & {"cells", "history", "conflicts"}:
            self._details_timer.start()

    def refresh_details(self) -> None:
        """Each annotator's label of the selected cell, into the cell details."""
        ids, store = self.window.selected_cell_ids(), self.window.current_store()
        details = self.window.details
        if len(ids) != 1 or store is None:
            return
        cell, path = str(ids[0]), Path(store.path)

        def done(found: tuple[dict[str, str], int]) -> None:
            details.set_annotators(cell, *found)

        self.details_runner.start(lambda _s: _annotators_of(path, cell), done=done)

    # --- actions -----------------------------------------------------------------------
    def ask_copy(self):
        """File → Copy for annotator…: the dialog (non-blocking); returns it."""
        from cellviewer.ui.annotators.copy_dialog import CopyForDialog

        store = self.window.current_store()
        if store is None:
            return None
        dialog = CopyForDialog(Path(store.path), self.window)
        dialog.chosen.connect(self.copy_for)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.copy_dialog = dialog
        dialog.open()
        return dialog

    def copy_for(self, out: str, user: str) -> bool:
        """Copy the open project to ``out`` for ``user``, in the background."""
        from cellviewer.core.merge import copy_for

        store = self.window.current_store()
        if store is None:
            return False
        source = Path(store.path)
        self.window.show_status(f"Copying {source.name} for {user}…", 0)
        self.copy_runner.start(
            lambda _s: copy_for(source, out, user),
            done=lambda made: self.window.show_status(
                f"{Path(made).name}: a copy of {source.name} for {user}; File → Merge "
                "project… brings it back", 10_000),
            failed=lambda message: self.window.report_error("Cannot copy the project",
                                                            message))
        return True

    def show_agreement(self):
        """Analyze → Annotator agreement…: the window (non-modal), computing; returns it."""
        from cellviewer.ui.annotators.agreement_view import AgreementWindow

        if self.agreement_window is None:
            self.agreement_window = AgreementWindow(self.window)
            self.agreement_window.computed.connect(self.agreement_computed)
        self.agreement_window.show()
        self.agreement_window.raise_()
        self.agreement_window.refresh()
        return self.agreement_window

    def edit_roles(self):
        """Edit → Roles… (non-blocking); returns the dialog."""
        from cellviewer.ui.annotators.roles_dialog import RolesDialog

        store = self.window.current_store()
        if store is None:
            return None
        dialog = RolesDialog(store, self.window.session.user, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.finished.connect(lambda _r: self.panel.show_role())
        self.roles_dialog = dialog
        dialog.open()
        return dialog

    def is_idle(self) -> bool:
        """No background work of the tools pending, no refresh scheduled."""
        runners = [self.copy_runner, self.details_runner, self.panel.runner,
                   self.panel.choice_runner]
        if self.agreement_window is not None:
            runners.append(self.agreement_window.runner)
        return all(r.is_idle() for r in runners) and not self._details_timer.isActive() \
            and not self.panel.refresh_pending() and not self.merge_flow.running()

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """Process events until the tools' background work is done (tests)."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if self.is_idle():
                QCoreApplication.processEvents()
                return True
        return False


def install(window: Any) -> AnnotatorTools:
    """Add the annotators' tools to ``window`` (a :class:`~cellviewer.ui.host.Host`); the
    window keeps them as ``window.annotator_tools``. Call it once, after the window is
    built (after the prediction tools, whose Review dock the Annotators dock joins)."""
    tools = AnnotatorTools(window)
    window.annotator_tools = tools
    return tools
