"""Training in the main window: a "Training" dock (the run list above the live monitor), a
"Training" menu (New training run…, Runs), the results window, and "make active model".

The main window calls :func:`install` once::

    from cellviewer.ui.training_install import install
    self.training = install(self)

It uses the window's extension surface where it has one (``add_panel(dock, area)``,
``current_store()`` or ``store``, a project-changed signal) and plain ``QMainWindow`` calls
otherwise. Nothing here imports torch: the trainer always runs in its own process.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
)

from cellviewer.core import runs as runs_mod
from cellviewer.core.runs import Run
from cellviewer.ui.training_monitor import RunMonitor, notify
from cellviewer.ui.training_results import ResultsView
from cellviewer.ui.training_runs import RunsPanel, TrainingManager

#: signals of the main window that announce another project (the first one found is used)
PROJECT_SIGNALS = ("projectChanged", "projectOpened", "storeChanged", "project_changed",
                   "project_opened", "store_changed")


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

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.ask_on_close = True
        self.manager = TrainingManager(parent=self)
        self.runs_panel = RunsPanel(self.manager)
        self.monitor = RunMonitor()
        self.results_window: ResultsWindow | None = None
        self.dialog = None

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.runs_panel)
        split.addWidget(self.monitor)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        self.dock = QDockWidget("Training", window)
        self.dock.setObjectName("training_dock")
        self.dock.setWidget(split)
        add_panel = getattr(window, "add_panel", None)
        if callable(add_panel):
            add_panel(self.dock, Qt.DockWidgetArea.RightDockWidgetArea)
        else:
            window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()

        menu = getattr(window, "menu", None)  # the window's "menu by title", if it has one
        self.menu = menu("&Training") if callable(menu) else window.menuBar().addMenu("&Training")
        self.new_action = QAction("&New training run…", self)
        self.new_action.setShortcut(QKeySequence("Ctrl+Shift+T"))
        self.new_action.triggered.connect(self.new_run)
        self.runs_action = QAction("&Runs", self)
        self.runs_action.triggered.connect(self.show_runs)
        self.menu.addAction(self.new_action)
        self.menu.addAction(self.runs_action)
        self.menu.aboutToShow.connect(self.sync_project)

        self.runs_panel.run_selected.connect(self.show_run)
        self.runs_panel.results_requested.connect(self.show_results)
        self.runs_panel.new_run_requested.connect(self.new_run)
        self.monitor.results_requested.connect(self.show_results)
        self.manager.run_started.connect(self._on_run_started)
        self.manager.run_ended.connect(self._on_run_ended)
        for name in PROJECT_SIGNALS:
            sig = getattr(window, name, None)
            if sig is not None and hasattr(sig, "connect"):
                sig.connect(lambda *_: self.sync_project())
                break
        window.installEventFilter(self)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.sync_project()

    # --- the project ---------------------------------------------------------------------
    def store(self):
        """The window's open project store, or None."""
        getter = getattr(self.window, "current_store", None)
        if callable(getter):
            return getter()
        return getattr(self.window, "store", None)

    def sync_project(self) -> None:
        """Follow the window's project (runs live next to its file)."""
        store = self.store()
        path = Path(store.path) if store is not None and getattr(store, "path", None) else None
        if path != self.manager.project_path:
            self.manager.set_project(path)
        self.new_action.setEnabled(path is not None)

    # --- actions -------------------------------------------------------------------------
    def new_run(self):
        """Open the New training run dialog (non-blocking); returns it."""
        from cellviewer.ui.training_dialog import TrainingDialog

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
        bar = getattr(self.window, "statusBar", None)
        if callable(bar):
            bar().showMessage(f"Training run {run.name}: {status}", 10_000)

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
        panel = self._model_panel()
        if panel is not None and path is not None:
            # the run trained on the project's own classes (or a subset): map them by name
            panel.load_model(path, model_id=model_id, name=run.name, ask=lambda _m: True)
        if self.results_window is not None and self.results_window.view.run is run:
            self.results_window.view.set_active(model_id)
        self.active_model_changed.emit(model_id, str(path))
        return model_id

    def _model_panel(self):
        for owner in (self.window, getattr(self.window, "prediction_tools", None)):
            panel = getattr(owner, "model_panel", None)
            if panel is not None:
                return panel
        try:
            from cellviewer.ui.model_panel import ModelPanel
        except ImportError:
            return None
        return self.window.findChild(ModelPanel)

    # --- closing -------------------------------------------------------------------------
    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt naming)
        if obj is self.window and event.type() == QEvent.Type.Close:
            active = self.manager.active()
            # offscreen (tests, CI) there is nobody to answer: stop them without asking
            interactive = QApplication.platformName() not in ("offscreen", "minimal")
            if active and self.ask_on_close and interactive:
                answer = QMessageBox.question(
                    self.window, "Training is running",
                    f"{len(active)} training run(s) are going. Stop them and quit? They are "
                    "kept as interrupted and can be resumed from their last saved model.",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
                if answer != QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return True
            self.shutdown()
        return False

    def shutdown(self) -> None:
        self.manager.shutdown()


def install(window: QMainWindow) -> TrainingController:
    """Add training to ``window`` (dock, menu, results); returns the controller, which the
    window may keep (e.g. ``window.training``) and which tests drive."""
    controller = TrainingController(window)
    window.training = controller
    return controller
