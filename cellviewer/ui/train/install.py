"""Training in the main window: a "Training" dock (the run list above the live monitor), a
"Training" menu (New training run…, Runs, Compare runs…), the results window, and "make active
model".

The main window calls :func:`install` once::

    from cellviewer.ui.train.install import install
    self.training = install(self)

Written against :class:`cellviewer.ui.host.Host` (``add_panel``, ``menu``, ``current_store``,
``show_status``, ``add_close_guard``, ``projectChanged``) and nothing else of the window.

Closing the project or quitting while runs are going asks first (:meth:`TrainingController.
may_close`, a close guard): "Keep running" lets them go on in the background, without the app
(a later session re-attaches to them: the run list shows them running and the monitor follows
their events.jsonl), "Stop" stops them (resumable from their last saved model), "Cancel"
keeps the project open. Nothing here imports torch: the trainer always runs in its own process.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
)

from cellviewer.core.training import runs as runs_mod
from cellviewer.core.training.runs import Run
from cellviewer.ui.host import QUIT, Host
from cellviewer.ui.train.monitor import RunMonitor, notify
from cellviewer.ui.train.results import ResultsView
from cellviewer.ui.train.runs import RunsPanel, TrainingManager

#: the question asked before the project closes while runs are going
RUNNING_BOX = "training_running_box"
KEEP_RUNNING, STOP, CANCEL = "Keep running", "Stop", "Cancel"
#: offscreen (tests, CI) nobody may be there to answer: the question then answers itself
#: "Cancel" after this long instead of waiting for ever (a test answers it long before)
OFFSCREEN_ANSWER_MS = 60_000


class ResultsWindow(QDialog):
    """A non-modal window around :class:`ResultsView`."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Training results")
        self.setModal(False)
        self.view = ResultsView()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.view)
        self.resize(1000, 760)


class TrainingController(QObject):
    """Everything training adds to a main window (see the module docstring)."""

    active_model_changed = Signal(int, str)  # model id in the project, model file path

    @property
    def monitor(self) -> RunMonitor:
        """The run monitor under the run list, made the first time the Training dock shows or
        a run is followed: its charts (pyqtgraph) stay off the window's start-up."""
        if self._monitor is None:
            self._monitor = RunMonitor()
            self._split.addWidget(self._monitor)
            self._split.setStretchFactor(0, 1)
            self._split.setStretchFactor(1, 3)
            self._monitor.results_requested.connect(self.show_results)
        return self._monitor

    def __init__(self, window: Host) -> None:
        super().__init__(window)
        self.window = window
        #: offscreen, quitting does not ask (nobody may be there to answer as the test run or
        #: the self-test ends): the runs are stopped, as "Stop" does. Tests set it to ask.
        self.ask_on_quit_offscreen = False
        self.manager = TrainingManager(parent=self)
        self.runs_panel = RunsPanel(self.manager)
        self._monitor: RunMonitor | None = None  # made when first needed (its charts)
        self.results_window: ResultsWindow | None = None
        self.dialog = None

        self._split = QSplitter(Qt.Orientation.Vertical)
        self._split.addWidget(self.runs_panel)
        self.dock = QDockWidget("Training", window)
        self.dock.setObjectName("training_dock")
        self.dock.setWidget(self._split)
        window.add_panel(self.dock, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock.hide()
        self.dock.visibilityChanged.connect(lambda shown: shown and self.monitor)

        self.menu = window.menu("&Training")
        self.new_action = QAction("&New training run…", self)
        self.new_action.setShortcut(QKeySequence("Ctrl+Shift+T"))
        self.new_action.triggered.connect(self.new_run)
        self.runs_action = QAction("&Runs", self)
        self.runs_action.triggered.connect(self.show_runs)
        self.compare_action = QAction("&Compare runs…", self)
        self.compare_action.triggered.connect(self.show_compare)
        self.compare_window = None
        self.menu.addAction(self.new_action)
        self.menu.addAction(self.runs_action)
        self.menu.addAction(self.compare_action)
        self.menu.aboutToShow.connect(self.sync_project)

        self.runs_panel.run_selected.connect(self.show_run)
        self.runs_panel.results_requested.connect(self.show_results)
        self.runs_panel.new_run_requested.connect(self.new_run)
        self.manager.run_started.connect(self._on_run_started)
        self.manager.run_ended.connect(self._on_run_ended)
        window.projectChanged.connect(lambda *_: self.sync_project())
        window.add_close_guard(self.may_close)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.sync_project()

    # --- the project ---------------------------------------------------------------------
    def store(self):
        """The window's open project store, or None."""
        return self.window.current_store()

    def sync_project(self) -> None:
        """Follow the window's project (runs live next to its file); a run of the project
        that is still going without the app (kept running when the project was closed, or
        left by an earlier session) is re-attached: the monitor follows its events.jsonl."""
        store = self.store()
        path = Path(store.path) if store is not None and store.path else None
        if path != self.manager.project_path:
            self.manager.set_project(path)
            if path is not None:
                self._reattach()
        self.new_action.setEnabled(path is not None)

    def _reattach(self) -> None:
        going = self.manager.background_runs()
        if not going:
            return
        run = going[-1]
        self.show_runs()
        self.runs_panel.select(run)
        self.show_run(run)
        self.window.show_status(f"Training run {run.name} is still going: following it", 10_000)

    # --- actions -------------------------------------------------------------------------
    def new_run(self):
        """Open the New training run dialog (non-blocking); returns it."""
        from cellviewer.ui.train.dialog import TrainingDialog

        self.sync_project()
        store = self.store()
        if store is None:
            notify(self.window, "New training run", "Open a project with labelled cells first.",
                   QMessageBox.Icon.Information)
            return None
        self.dialog = TrainingDialog(store, self.manager, self.window)
        self.dialog.run_launched.connect(self._on_launched)
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.open()
        return self.dialog

    def show_runs(self) -> None:
        self.sync_project()
        self.runs_panel.refresh()
        self.dock.show()
        self.dock.raise_()

    def show_compare(self):
        """The Compare runs window over the project's runs (or, without a project, empty with
        its "Open sweep folder…" button); returns it."""
        from cellviewer.ui.train.compare import CompareRunsWindow

        self.sync_project()
        if self.compare_window is None:
            self.compare_window = CompareRunsWindow(self.window)
        store = self.store()
        if store is not None and store.path:
            root = runs_mod.runs_root(store.path)
            self.compare_window.load([root], label=f"the project's runs ({root.name})")
        self.compare_window.show()
        self.compare_window.raise_()
        return self.compare_window

    def show_run(self, run: Run) -> None:
        self.monitor.show_run(run, self.manager.process_for(run))

    def _on_launched(self, run: Run) -> None:
        self.show_runs()
        self.runs_panel.select(run)
        self.show_run(run)

    def _on_run_started(self, run: Run) -> None:
        if self.monitor.run is not None and self.monitor.run.folder == run.folder:
            self.show_run(run)

    def _on_run_ended(self, run: Run, status: str) -> None:
        self.window.show_status(f"Training run {run.name}: {status}", 10_000)

    def show_results(self, run: Run) -> ResultsWindow:
        if self.results_window is None:
            self.results_window = ResultsWindow(self.window)
            self.results_window.view.activate_requested.connect(self.make_active)
            self.results_window.view.finetune_requested.connect(self.fine_tune)
            # a new blur measurement fills the run list's robustness column
            self.results_window.view.robustness_measured.connect(
                lambda _run: self.runs_panel.refresh())
        self.results_window.view.show_run(run.reload())
        self.results_window.show()
        self.results_window.raise_()
        return self.results_window

    def fine_tune(self, run: Run):
        """Open the New training run dialog set to start from ``run``'s best model (the same
        architecture); returns the dialog."""
        dialog = self.new_run()
        if dialog is not None:
            try:
                arch = str(run.config().get("model", ""))
            except runs_mod.RunError as exc:
                notify(self.window, "Fine-tune", str(exc))
                return dialog
            dialog.start_from(arch, run.folder / runs_mod.BEST_MODEL)
        return dialog

    def make_active(self, run: Run) -> int | None:
        """Register the run's model in the project and make it the model for prediction."""
        store = self.store()
        if store is None:
            return None
        try:
            model_id = runs_mod.register_model(store, run)
        except Exception as exc:  # the store refused it, the file vanished...
            if self.results_window is not None:
                self.results_window.view.show_error(f"{run.name}: {exc}")
            return None
        path = run.model_path()
        # the project's active model from now on: the model panel loads it (the run trained
        # on the project's own classes, or a subset, so they map by name)
        self.window.session.set_active_model(model_id)
        if self.results_window is not None and self.results_window.view.run is run:
            self.results_window.view.set_active(model_id)
        self.active_model_changed.emit(model_id, str(path))
        return model_id

    # --- closing -------------------------------------------------------------------------
    def may_close(self, reason: str) -> bool:
        """The close guard (``reason``: "close-project" or "quit"): with runs going, ask
        whether to keep them running in the background, stop them, or cancel; False keeps
        the project open."""
        active = self.manager.active()
        if not active:
            return True
        offscreen = QApplication.platformName() in ("offscreen", "minimal")
        if reason == QUIT and offscreen and not self.ask_on_quit_offscreen:
            self.manager.shutdown()  # nobody to ask: as "Stop"
            return True
        answer = self.ask_running(len(active), reason, offscreen)
        if answer == KEEP_RUNNING:
            self.manager.detach_all()
            return True
        if answer == STOP:
            self.manager.shutdown()
            return True
        return False

    def ask_running(self, n: int, reason: str, offscreen: bool = False) -> str:
        """The question (a ``QMessageBox`` named ``training_running_box``): "Keep running",
        "Stop" or "Cancel" (the default, and what Escape or closing the box answer)."""
        what = "quits" if reason == QUIT else "closes this project"
        box = QMessageBox(QMessageBox.Icon.Question, "Training is running",
                          f"{n} training run{'s are' if n != 1 else ' is'} going.",
                          QMessageBox.StandardButton.NoButton, self.window)
        box.setObjectName(RUNNING_BOX)
        box.setInformativeText(
            f"Keep running: training goes on in the background after CellViewer {what}; the "
            "run list shows it again when the project is opened.\n"
            "Stop: the runs stop now and can be resumed later from their last saved model.")
        keep = box.addButton(KEEP_RUNNING, QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton(STOP, QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)
        if offscreen:  # never wait for ever for an answer nobody can give
            QTimer.singleShot(OFFSCREEN_ANSWER_MS, box, box.reject)
        box.exec()
        clicked = box.clickedButton()
        box.deleteLater()
        if clicked is keep:
            return KEEP_RUNNING
        if clicked is stop:
            return STOP
        return CANCEL

    def shutdown(self) -> None:
        self.manager.shutdown()


def install(window: Host) -> TrainingController:
    """Add training to ``window`` (dock, menu, results); returns the controller, which the
    window may keep (e.g. ``window.training``) and which tests drive."""
    controller = TrainingController(window)
    window.training = controller
    return controller
