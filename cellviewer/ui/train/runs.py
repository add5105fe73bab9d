"""The project's training runs: launching, tracking and listing them.

:class:`TrainingManager` owns the trainer processes of the open project (one
:class:`~cellviewer.ui.train.monitor.RunProcess` per running run), launches new runs,
resumes and repeats old ones, and when the project closes or the app quits either lets them go
on in the background (:meth:`TrainingManager.detach_all`) or stops them and records them as
interrupted (:meth:`TrainingManager.shutdown`). :class:`RunsPanel` lists every run of the
project with its status and offers Show, Stop, Resume, Repeat and Results.

Persistence is the run folders themselves (:mod:`cellviewer.core.training.runs`): the list is
rebuilt
from disk, so it survives an app restart or crash.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.training import runs as runs_mod
from cellviewer.core.training.runs import Run, RunRegistry
from cellviewer.ui.common.trainer_process import signal_process
from cellviewer.ui.train.monitor import (
    STATUS_COLOURS,
    RunProcess,
    field_value,
    notify,
)


class TrainingManager(QObject):
    """The training runs of one project and their live processes."""

    runs_changed = Signal()
    run_started = Signal(object)  # Run (its RunProcess via process_for)
    run_ended = Signal(object, str)  # Run, final status

    def __init__(self, project_path: str | os.PathLike | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.registry: RunRegistry | None = None
        self.processes: dict[Path, RunProcess] = {}
        self.set_project(project_path)

    # --- project -------------------------------------------------------------------------
    def set_project(self, project_path: str | os.PathLike | None) -> None:
        """Follow another project (or none); runs still going keep going in the background."""
        self.registry = RunRegistry(project_path) if project_path else None
        self.runs_changed.emit()

    @property
    def project_path(self) -> Path | None:
        return self.registry.project_path if self.registry else None

    def runs(self) -> list[Run]:
        """The project's runs; a run with a process here is that process's ``Run`` object."""
        if self.registry is None:
            return []
        return [self.processes[r.folder.resolve()].run if r.folder.resolve() in self.processes
                else r for r in self.registry.runs()]

    # --- processes -----------------------------------------------------------------------
    def process_for(self, run: Run) -> RunProcess | None:
        return self.processes.get(run.folder.resolve())

    def status(self, run: Run) -> str:
        proc = self.process_for(run)
        if proc is not None:
            return proc.status
        return run.status()

    def active(self) -> list[RunProcess]:
        return [p for p in self.processes.values() if p.is_running()]

    def launch(self, run: Run, extra_args: list[str] | None = None) -> RunProcess:
        """Start the trainer on ``run``'s config.json (written beforehand); run.json has its
        pid when this returns."""
        old = self.process_for(run)
        if (old is not None and old.is_running()) or (old is None and run.process_alive()):
            raise runs_mod.RunError(f"{run.folder}: this run is already training")
        proc = RunProcess(run, self)
        self.processes[run.folder.resolve()] = proc
        proc.ended.connect(lambda status, r=run: self._on_ended(r, status))
        proc.event.connect(self._on_event)
        proc.start(extra_args)
        self.run_started.emit(run)
        self.runs_changed.emit()
        return proc

    def resume(self, run: Run) -> RunProcess:
        """Continue an interrupted, stopped or failed run from its last model file."""
        args = runs_mod.resume_args(run)
        run.update(app_status=None)
        return self.launch(run, args)

    def repeat(self, run: Run) -> RunProcess:
        """A new run with the same configuration and patch set."""
        if self.registry is None:
            raise runs_mod.RunError("no project is open")
        return self.launch(self.registry.repeat(run))

    def stop(self, run: Run) -> None:
        proc = self.process_for(run)
        if proc is not None and proc.is_running():
            proc.request_stop()
            return
        # a trainer left running in the background: no pipe to it, SIGTERM asks it to stop
        signal_process(run.meta.get("pid"), run.meta.get("pid_token"), signal.SIGTERM)

    def _on_event(self, ev: dict) -> None:
        # the list shows epochs and metrics: refresh it when they change, not per heartbeat
        if ev.get("event") in ("started", "epoch", "stopped", "error"):
            self.runs_changed.emit()

    def _on_ended(self, run: Run, status: str) -> None:
        self.run_ended.emit(run, status)
        self.runs_changed.emit()

    def shutdown(self, grace_ms: int = 3000) -> None:
        """The app (or the project) is closing: stop every running trainer and mark its run
        interrupted (resumable from its last model file)."""
        for proc in list(self.processes.values()):
            proc.shutdown(grace_ms)

    def detach_all(self) -> list[Run]:
        """Let every running trainer go on in the background, without the app ("Keep
        running"); returns their runs. They are listed (and followed) from their run folders
        from now on, in this session or a later one."""
        kept = []
        for folder, proc in list(self.processes.items()):
            if proc.is_running():
                proc.detach()
                kept.append(proc.run)
                del self.processes[folder]
        if kept:
            self.runs_changed.emit()
        return kept

    def background_runs(self) -> list[Run]:
        """Runs of the project whose trainer runs without a process here (detached, or left
        by an earlier session of the app)."""
        return [r for r in self.runs() if self.process_for(r) is None
                and r.status() == runs_mod.RUNNING]


# --- the list ---------------------------------------------------------------------------------
#: the blur of the robustness column (the study's headline figure), post-resize
BLUR_SIGMA = 0.8
BLUR_COLUMN = f"Blur ΔF1 σ{BLUR_SIGMA:g}"
COLUMNS = ("Run", "Model", "Status", "Epochs", "Best val. acc.", "Macro-F1", BLUR_COLUMN,
           "Best epoch", "FlagLimit", "Created")
#: the figures, right-aligned so they line up
FIGURE_COLUMNS = frozenset(COLUMNS.index(c) for c in (
    "Epochs", "Best val. acc.", "Macro-F1", BLUR_COLUMN, "Best epoch", "FlagLimit"))
HEADER_TIPS = {
    BLUR_COLUMN: f"Change of macro-F1 when the validation cells are blurred with a Gaussian of "
                 f"σ = {BLUR_SIGMA:g} px on the 40×40 patch (post-resize), from the run's "
                 "robustness.json; closer to 0 is more robust. Empty: not measured yet "
                 "(Results… → Blur robustness).",
}
SORT_KEY = Qt.ItemDataRole.UserRole + 1  # what a column sorts by, where not its text


class _Item(QTableWidgetItem):
    """A cell that sorts by its ``SORT_KEY`` value (numbers as numbers: 10 after 9; empty
    cells last, in either order) and by its text where it has none."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_KEY), other.data(SORT_KEY)
        if mine is None and theirs is None:
            return self.text() < other.text()
        if mine is None or theirs is None:
            # an empty cell sorts after every value: Qt sorts descending by asking the
            # reverse question, so the answer turns with the order the header shows
            table = self.tableWidget()
            descending = (table is not None and table.horizontalHeader().sortIndicatorOrder()
                          == Qt.SortOrder.DescendingOrder)
            return (mine is None) if descending else (mine is not None)
        return mine < theirs


class RunsPanel(QWidget):
    """Every run of the project with its status and the metrics of its best epoch (the model
    it keeps), sortable by any column to compare runs; Show / Stop / Resume / Repeat /
    Results."""

    run_selected = Signal(object)  # Run
    results_requested = Signal(object)  # Run
    new_run_requested = Signal()

    def __init__(self, manager: TrainingManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        self._runs: list[Run] = []
        self._detached = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for col, name in enumerate(COLUMNS):
            if name in HEADER_TIPS:
                self.table.horizontalHeaderItem(col).setToolTip(HEADER_TIPS[name])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setWordWrap(False)  # one line per run; a narrow dock scrolls sideways
        # oldest first until the user clicks a column header to compare runs by it
        header.setSortIndicator(COLUMNS.index("Created"), Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.doubleClicked.connect(lambda _i: self._emit_selected())

        self.new_button = QPushButton("New…")
        self.new_button.clicked.connect(self.new_run_requested)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop_selected)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue from the run's last saved model")
        self.resume_button.clicked.connect(self.resume_selected)
        self.repeat_button = QPushButton("Repeat")
        self.repeat_button.setToolTip("Train again with exactly the same data and settings")
        self.repeat_button.clicked.connect(self.repeat_selected)
        self.results_button = QPushButton("Results…")
        self.results_button.clicked.connect(self.results_selected)
        buttons = QHBoxLayout()
        for b in (self.new_button, self.stop_button, self.resume_button, self.repeat_button,
                  self.results_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)

        manager.runs_changed.connect(self.refresh)
        # a trainer left running by an earlier session ends on its own: notice it
        self._poll = QTimer(self)
        self._poll.setInterval(5000)
        self._poll.timeout.connect(self._refresh_detached)
        self._poll.start()
        self.refresh()

    # --- contents ------------------------------------------------------------------------
    def refresh(self) -> None:
        current = self.selected()
        keep = current.folder if current else None
        self._runs = self.manager.runs()
        self._detached = False
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)  # rows must stay put while they are filled
        self.table.clearContents()
        self.table.setRowCount(len(self._runs))
        for row, run in enumerate(self._runs):
            status = self.manager.status(run)
            proc = self.manager.process_for(run)
            # a trainer left running by an earlier session of the app: watch it (_poll)
            self._detached |= proc is None and status == runs_mod.RUNNING
            summary = runs_mod.RunSummary.from_events(
                proc.events if proc is not None else run.events())
            best = summary.best_epoch or {}
            total = summary.total_epochs
            try:
                config = run.config()
            except runs_mod.RunError:
                config = {"model": "?"}
            acc = field_value(best, "val_acc", "val_accuracy", ("val", "acc"))
            f1 = field_value(best, "val_macro_f1", "macro_f1", ("val", "macro_f1"))
            best_epoch = best.get("epoch") if isinstance(best.get("epoch"), int) else None
            limit = config.get("flag_limit")
            limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
            n_ep = len(summary.epochs)
            blur, blur_tip = self._blur_delta(run)
            cells = [  # (text, sort key or None to sort by the text)
                (run.name, None), (str(config.get("model", "")), None), (status, None),
                (f"{n_ep} / {total}" if total else str(n_ep), n_ep),
                (f"{acc:.3f}" if acc is not None else "", acc),
                (f"{f1:.3f}" if f1 is not None else "", f1),
                (f"{round(blur, 3) + 0.0:+.3f}" if blur is not None else "", blur),
                (str(best_epoch) if best_epoch is not None else "", best_epoch),
                (f"{limit:,}" if limit is not None else "all", limit),
                (str(run.meta.get("created_at", ""))[:16].replace("T", " "),
                 str(run.meta.get("created_at", ""))),  # to the second, not the minute shown
            ]
            for col, (text, key) in enumerate(cells):
                item = _Item(text)
                if key is not None:
                    item.setData(SORT_KEY, key)
                if col in FIGURE_COLUMNS:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if col == 2:
                    item.setForeground(QColor(STATUS_COLOURS.get(status, "#555")))
                if COLUMNS[col] == BLUR_COLUMN and blur_tip:
                    item.setToolTip(blur_tip)
                item.setData(Qt.ItemDataRole.UserRole, str(run.folder))
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(sorting)  # re-sorts by the column the user chose
        if keep is not None:
            self._select_folder(keep)
        self._update_buttons()

    @staticmethod
    def _blur_delta(run: Run) -> tuple[float | None, str]:
        """Δ macro-F1 at ``BLUR_SIGMA`` post-resize from the run's robustness.json (None where
        not measured) and a tooltip (a damaged file is named there, not raised)."""
        try:
            report = runs_mod.read_robustness(run.folder)
        except runs_mod.RunError as exc:
            return None, str(exc)
        if report is None:
            return None, ""
        delta = runs_mod.robustness_value(report, BLUR_SIGMA, "post", "delta_macro_f1")
        if delta is None:
            return None, f"{run.folder / runs_mod.ROBUSTNESS_FILE}: σ {BLUR_SIGMA:g} not measured"
        f1 = runs_mod.robustness_value(report, BLUR_SIGMA, "post", "macro_f1")
        return delta, (f"macro-F1 {float(report['clean_macro_f1']):.3f} clean, "
                       f"{f1:.3f} at σ {BLUR_SIGMA:g} (post-resize)")

    def _refresh_detached(self) -> None:
        if self._detached:
            self.refresh()

    def runs(self) -> list[Run]:
        return list(self._runs)

    # Rows are in the order the user sorted them, not the order of ``_runs``: each row's items
    # carry their run's folder (UserRole), and rows are found through it.
    def _run_at(self, row: int) -> Run | None:
        item = self.table.item(row, 0)
        folder = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return next((r for r in self._runs if str(r.folder) == folder), None)

    def _row_of(self, folder: Path) -> int | None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == str(folder):
                return row
        return None

    def _select_folder(self, folder: Path) -> None:
        row = self._row_of(folder)
        if row is not None:
            self.table.selectRow(row)

    def row_of(self, name: str) -> int | None:
        """The table row that shows the run called ``name`` (None: no such run)."""
        run = next((r for r in self._runs if r.name == name), None)
        return self._row_of(run.folder) if run is not None else None

    def row_status(self, name: str) -> str | None:
        row = self.row_of(name)
        return self.table.item(row, 2).text() if row is not None else None

    def selected(self) -> Run | None:
        rows = self.table.selectionModel().selectedRows()
        return self._run_at(rows[0].row()) if rows else None

    def select(self, run: Run) -> None:
        self._select_folder(run.folder)

    # --- actions -------------------------------------------------------------------------
    def _on_selection(self) -> None:
        self._update_buttons()
        self._emit_selected()

    def _emit_selected(self) -> None:
        run = self.selected()
        if run is not None:
            self.run_selected.emit(run)

    def _update_buttons(self) -> None:
        run = self.selected()
        status = self.manager.status(run) if run else None
        self.stop_button.setEnabled(status == runs_mod.RUNNING)
        self.resume_button.setEnabled(
            status in runs_mod.RESUMABLE and run is not None and runs_mod.can_resume(run))
        self.repeat_button.setEnabled(status in runs_mod.TERMINAL)
        self.results_button.setEnabled(
            status in (runs_mod.FINISHED, runs_mod.STOPPED, runs_mod.INTERRUPTED))

    def results_selected(self) -> None:
        run = self.selected()
        if run is not None:
            self.results_requested.emit(run)

    def stop_selected(self) -> None:
        run = self.selected()
        if run is not None:
            self.manager.stop(run)

    def resume_selected(self) -> None:
        run = self.selected()
        if run is None:
            return
        try:
            self.manager.resume(run)
        except runs_mod.RunError as exc:
            notify(self, "Resume training", str(exc))
            return
        self.select(run)
        self.run_selected.emit(run)

    def repeat_selected(self) -> None:
        run = self.selected()
        if run is None:
            return
        try:
            proc = self.manager.repeat(run)
        except runs_mod.RunError as exc:
            notify(self, "Repeat training", str(exc))
            return
        self.select(proc.run)
        self.run_selected.emit(proc.run)
