"""The blur robustness of a run's model, as the study measures it: macro-F1 under Gaussian
blur (σ 0.1 to 1.6 px, post- and pre-resize) as a chart, a table and the drop slopes, read from
the run folder's ``robustness.json``; where there is none yet, :class:`BlurRobustnessView`
measures it by running ``python -m trainer robustness`` as a separate process (a
:class:`~cellviewer.ui.common.trainer_process.TrainerProcess`, never waited on). Nothing here
imports
torch. Shown as a tab of the run's results (:mod:`cellviewer.ui.train.results`).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.formatting import format_clock
from cellviewer.core.training import runs as runs_mod
from cellviewer.core.training.runs import Run
from cellviewer.ui.common.trainer_process import TrainerProcess

if TYPE_CHECKING:
    import pyqtgraph as pg


def _pg():
    """pyqtgraph, imported when the first chart is made (it costs a third of a second, and
    most sessions open no chart)."""
    import pyqtgraph

    return pyqtgraph


RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter

BLUR_INTRO = (
    "Measures how far this model's macro-F1 falls on out-of-focus cells, as in the study: the "
    "run's validation cells blurred with a Gaussian of σ 0.1 to 1.6 px, on the 40×40 patch "
    "(post-resize) and on the source crop before resizing (pre-resize). The trainer runs it in "
    "the background and writes robustness.json into the run folder."
)
# mode -> legend name, colour, pen style, symbol, line width, symbol size: pre-resize dashed
# and smaller on top of post-resize, so both show where they are equal (a 40 px field of view)
MODE_STYLE = {
    "post": ("post-resize", "#1f77b4", Qt.PenStyle.SolidLine, "o", 3, 10),
    "pre": ("pre-resize", "#ff7f0e", Qt.PenStyle.DashLine, "s", 2, 6),
}


def blur_x(sigma: float) -> float:
    """Where σ sits on the chart's x axis: log2(1 + σ), the scale of the report's drop slope
    (the study's σ double from 0.1 to 1.6, so a linear axis would crowd the small ones)."""
    return math.log2(1.0 + float(sigma))


def signed(value: float) -> str:
    """``+0.012`` / ``-0.143``, and ``+0.000`` for a value that rounds to zero (never -0.000)."""
    return f"{round(float(value), 3) + 0.0:+.3f}"


def blur_ticks(sigmas: list[float], gap: float = 0.2) -> list[list[tuple[float, str]]]:
    """Tick levels for the σ axis: a σ within ``gap`` (in log2(1 + σ)) of the previous
    labelled one goes to the second level, whose labels pyqtgraph leaves out when the chart is
    too narrow for them (the study's 0.1 between 0 and 0.2), instead of printing over them."""
    major: list[tuple[float, str]] = []
    minor: list[tuple[float, str]] = []
    for sigma in sigmas:
        x = blur_x(sigma)
        (minor if major and x - major[-1][0] < gap else major).append((x, f"{sigma:g}"))
    return [major, minor]


def robustness_series(report: dict) -> dict[str, tuple[list[float], list[float]]]:
    """Per measured mode ("post", "pre"): σ and macro-F1, starting at σ 0 with the clean
    macro-F1, in order of σ."""
    clean = float(report["clean_macro_f1"])
    series = {}
    for mode in MODE_STYLE:
        rows = sorted((r for r in report["rows"] if r["mode"] == mode),
                      key=lambda r: float(r["sigma"]))
        if rows:
            series[mode] = ([0.0, *(float(r["sigma"]) for r in rows)],
                            [clean, *(float(r["macro_f1"]) for r in rows)])
    return series


class TrainerJob(QObject):
    """One short trainer command (e.g. ``robustness``; not a training run, which has its
    :class:`~cellviewer.ui.train.monitor.RunProcess`) in a
    :class:`~cellviewer.ui.common.trainer_process.TrainerProcess`, started like a training run and
    never waited on. ``ended(ok, message)`` comes once: ``message`` is the trainer's failure in
    words with its last stderr lines, and empty when it succeeded or was cancelled."""

    ended = Signal(bool, str)

    def __init__(self, args: list[str], cwd: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # the report goes to files; stdout (its table) is not needed
        self.proc = TrainerProcess(args, cwd, self, protocol=False)
        self.program, self.args = self.proc.program, self.proc.args
        self.cancelled = False
        self._done = False
        self.proc.finished.connect(self._on_finished)

    @property
    def started_at(self) -> float | None:
        return self.proc.started_at

    def start(self) -> None:
        if not self.proc.start():
            # reported from the event loop, as a finished process is
            QTimer.singleShot(0, lambda: self._end(False, self.proc.error or ""))

    def is_running(self) -> bool:
        return self.proc.is_running()

    def elapsed(self) -> float:
        return self.proc.elapsed()

    def cancel(self) -> None:
        """Kill the trainer: a measurement keeps nothing worth a graceful stop (the report is
        written at its end)."""
        self.cancelled = True
        self.proc.kill()

    def stderr_tail(self, lines: int = 6) -> str:
        return self.proc.stderr_tail(lines)

    def _on_finished(self, exit_code: int, crashed: bool) -> None:
        if self.cancelled:
            self._end(False, "")
        elif not crashed and exit_code == 0:
            self._end(True, "")
        else:
            how = "was killed" if crashed else f"exited with code {exit_code}"
            tail = self.stderr_tail()
            self._end(False, f"The trainer {how}" + (f":\n{tail}" if tail else "."))

    def _end(self, ok: bool, message: str) -> None:
        if not self._done:
            self._done = True
            self.ended.emit(ok, message)


def _blur_plot() -> pg.PlotWidget:
    """A chart in the style of the training charts (white, dark readable axes)."""
    w = _pg().PlotWidget(background="w")
    w.setTitle("Macro-F1 under Gaussian blur", color="#222", size="10pt")
    w.setLabel("bottom", "blur σ (px, log₂(1 + σ) spacing)")
    w.setLabel("left", "macro-F1")
    w.showGrid(x=True, y=True, alpha=0.25)
    # bottom left: macro-F1 falls from the top left to the bottom right, never there
    legend = w.addLegend(offset=(10, -10), labelTextColor="#222", brush=(255, 255, 255, 210))
    legend.setZValue(100)
    for axis in ("bottom", "left"):
        w.getAxis(axis).setTextPen("#333")
        w.getAxis(axis).setPen("#888")
        w.getAxis(axis).enableAutoSIPrefix(False)
    w.setMinimumSize(240, 170)
    w.setMenuEnabled(False)
    return w


class BlurRobustnessView(QWidget):
    """The blur robustness of a run's best model: macro-F1 against σ (chart and table, post-
    and pre-resize), the drop slopes and the report's notes; or, where the run folder has no
    ``robustness.json`` yet, what it measures and a button that measures it (a
    :class:`TrainerJob`, cancellable; killed when another run is shown). ``measured(Run)``:
    a new report was written."""

    measured = Signal(object)  # Run

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run: Run | None = None
        self.report: dict | None = None
        self.job: TrainerJob | None = None

        # no report yet: what it is, and the button
        self.intro = QLabel(BLUR_INTRO)
        self.intro.setWordWrap(True)
        self.measure_button = QPushButton("Measure blur robustness")
        self.measure_button.clicked.connect(self.measure)
        intro_page = QWidget()
        il = QVBoxLayout(intro_page)
        il.setContentsMargins(24, 8, 24, 8)
        il.addStretch(1)
        il.addWidget(self.intro)  # no alignment flag: a wrapped label then gets its height
        il.addSpacing(8)
        il.addWidget(self.measure_button, 0, Qt.AlignmentFlag.AlignHCenter)
        il.addStretch(2)

        # the report
        self.plot = _blur_plot()
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["σ", "post F1", "Δ", "pre F1", "Δ"])
        tips = ["Gaussian blur σ in pixels (0: the clean cells)",
                "macro-F1, blur on the 40×40 patch (post-resize)",
                "change of macro-F1 from clean, post-resize",
                "macro-F1, blur on the source crop before resizing (pre-resize)",
                "change of macro-F1 from clean, pre-resize"]
        for col, tip in enumerate(tips):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.summary = QLabel("")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.again_button = QPushButton("Measure again")
        self.again_button.setToolTip("Run the blur test on this run's best model again")
        self.again_button.clicked.connect(self.measure)
        # the chart takes the height; the table, the figures in words and the button share a
        # column as wide as the table
        side = QVBoxLayout()
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.table)
        side.addWidget(self.summary)
        side.addStretch(1)
        side.addWidget(self.again_button, 0, Qt.AlignmentFlag.AlignRight)
        report_page = QWidget()
        rl = QHBoxLayout(report_page)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.plot, 1)
        rl.addLayout(side)

        self.stack = QStackedWidget()
        self.stack.addWidget(intro_page)
        self.stack.addWidget(report_page)

        # the measurement: running, cancel, again
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # no steps to count: a busy indicator
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(120)
        self.status_label = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addWidget(self.busy)
        row.addWidget(self.status_label, 1)
        row.addWidget(self.cancel_button)
        self.error_label = QLabel("")
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.error_label)
        lay.addLayout(row)
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._update_controls)
        self._update_controls()

    # --- showing -------------------------------------------------------------------------
    def is_measuring(self) -> bool:
        return self.job is not None and self.job.is_running()

    def show_run(self, run: Run | None) -> None:
        """Show ``run``'s report (or the button); a measurement of another run is killed."""
        if self.run is not None and (run is None or Path(run.folder).resolve()
                                     != Path(self.run.folder).resolve()):
            self.cancel()
            self.status_label.setText("")
        self.run = run
        self.error_label.hide()
        self.reload()

    def reload(self) -> None:
        """Read the run folder's robustness.json again."""
        self.report = None
        if self.run is not None:
            try:
                self.report = runs_mod.read_robustness(self.run.folder)
            except runs_mod.RunError as exc:
                self._show_error(f"{exc}\nMeasure again to replace it.")
        if self.report is None:
            self.stack.setCurrentIndex(0)
        else:
            self._show_report(self.report)
            self.stack.setCurrentIndex(1)
        self._update_controls()

    def _show_report(self, report: dict) -> None:
        self.series = robustness_series(report)
        self.plot.clear()  # the curves and their legend entries
        self.curves = {}
        sigmas: set[float] = {0.0}
        ys: list[float] = []
        for mode, (xs, f1) in self.series.items():
            name, colour, style, symbol, width, size = MODE_STYLE[mode]
            self.curves[mode] = self.plot.plot(
                [blur_x(x) for x in xs], f1, name=name,
                pen=_pg().mkPen(colour, width=width, style=style), symbol=symbol,
                symbolSize=size, symbolBrush=colour, symbolPen=colour)
            sigmas.update(xs)
            ys += f1
        self.plot.getAxis("bottom").setTicks(blur_ticks(sorted(sigmas)))
        # at least 0.1 of macro-F1 in view, so a robust model's flat line is not magnified
        lo, hi = min(ys), max(ys)
        pad = max(0.02, 0.08 * (hi - lo), (0.1 - (hi - lo)) / 2)
        self.plot.setYRange(max(0.0, lo - pad), min(1.0, hi + pad), padding=0)
        # room either side for the first and the last σ's label (pyqtgraph drops a label that
        # would stick out of the axis)
        self.plot.setXRange(-0.06, blur_x(max(sigmas)) + 0.08, padding=0)
        self._fill_table(report)
        self.summary.setText(self._summary_text(report))

    def _fill_table(self, report: dict) -> None:
        clean = float(report["clean_macro_f1"])
        by_key = {(r["mode"], round(float(r["sigma"]), 9)): r for r in report["rows"]}
        sigmas = sorted({round(float(r["sigma"]), 9) for r in report["rows"]})
        self.table.setRowCount(len(sigmas) + 1)
        for row, sigma in enumerate([0.0, *sigmas]):
            cells = ["0 (clean)" if row == 0 else f"{sigma:g}"]
            for mode in MODE_STYLE:
                if row == 0:
                    cells += [f"{clean:.3f}", ""]
                    continue
                r = by_key.get((mode, sigma))
                if r is None:
                    cells += ["–", ""]
                    continue
                delta = r.get("delta_macro_f1")
                delta = float(delta) if isinstance(delta, int | float) else r["macro_f1"] - clean
                cells += [f"{float(r['macro_f1']):.3f}", signed(delta)]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(RIGHT)
                if col in (2, 4) and text.startswith("-") and float(text) <= -0.05:
                    item.setForeground(QColor("#b00020"))  # a loss worth a look
                self.table.setItem(row, col, item)
        has_pre = "pre" in self.series
        self.table.setColumnHidden(3, not has_pre)
        self.table.setColumnHidden(4, not has_pre)
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()
        # exactly as large as its rows: the chart gets the rest
        frame = 2 * self.table.frameWidth()
        self.table.setFixedSize(
            self.table.horizontalHeader().length() + frame,
            self.table.horizontalHeader().height() + self.table.verticalHeader().length()
            + frame)
        self.summary.setFixedWidth(self.table.width())

    def _summary_text(self, report: dict) -> str:
        slopes = report.get("drop_slopes") or {}
        parts = [f"{MODE_STYLE[m][0]}&nbsp;<b>{signed(v)}</b>" for m, v in slopes.items()
                 if m in MODE_STYLE and isinstance(v, int | float) and math.isfinite(v)]
        lines = []
        if parts:
            lines.append("<b>Drop slope</b> (accuracy per doubling of 1&nbsp;+&nbsp;σ):<br>"
                         + " · ".join(parts))
        n = report.get("n")
        lines.append((f"{n:,} validation cells; " if isinstance(n, int) else "")
                     + f"clean accuracy {float(report['clean_accuracy']):.3f}, "
                     f"macro-F1 {float(report['clean_macro_f1']):.3f}")
        for note in report.get("notes") or []:
            note = str(note)
            lines.append("<i>Note:</i> " + html.escape(note[:1].upper() + note[1:], quote=False))
        if self._stale():
            lines.append("<i>Measured before the run's current model file was written: "
                         "measure again.</i>")
        return "<br>".join(lines)

    def _stale(self) -> bool:
        """Whether the model file is newer than the report (a resumed run, say)."""
        model = self.run.model_path() if self.run is not None else None
        path = self.run.folder / runs_mod.ROBUSTNESS_FILE if self.run is not None else None
        try:
            return model is not None and model.stat().st_mtime > path.stat().st_mtime + 1.0
        except OSError:
            return False

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def _update_controls(self) -> None:
        running = self.is_measuring()
        has_model = self.run is not None and self.run.model_path() is not None
        self.measure_button.setEnabled(has_model and not running)
        self.again_button.setVisible(self.report is not None and not running)
        self.again_button.setEnabled(has_model)
        self.busy.setVisible(running)
        self.cancel_button.setVisible(running)
        if running:
            self.status_label.setText(
                f"Measuring blur robustness… {format_clock(self.job.elapsed())}")
        elif self.run is not None and not has_model:
            self.status_label.setText("This run has no model file to measure.")
        elif self.status_label.text().startswith("Measuring"):
            self.status_label.setText("")

    # --- measuring -----------------------------------------------------------------------
    def measure(self) -> None:
        """Start ``python -m trainer robustness`` on the run's best model (not waited on)."""
        if self.run is None or self.is_measuring():
            return
        try:
            args = runs_mod.robustness_args(self.run)
        except runs_mod.RunError as exc:
            self._show_error(str(exc))
            return
        self.error_label.hide()
        job = TrainerJob(args, self.run.folder, self)
        run = self.run
        job.ended.connect(lambda ok, message: self._on_job_ended(job, run, ok, message))
        self.job = job
        job.start()
        self._clock.start()
        self._update_controls()

    def cancel(self) -> None:
        """Kill a running measurement (its end is then ignored)."""
        job, self.job = self.job, None
        self._clock.stop()
        if job is not None and job.is_running():
            job.cancel()
            self.status_label.setText("Cancelled.")
        self._update_controls()

    def _on_job_ended(self, job: TrainerJob, run: Run, ok: bool, message: str) -> None:
        job.deleteLater()
        if job is not self.job:  # cancelled, or a run no longer shown
            return
        self.job = None
        self._clock.stop()
        self.status_label.setText("")
        if ok:
            self.reload()
            if self.report is not None:
                self.status_label.setText(f"Measured in {format_clock(job.elapsed())}.")
                self.measured.emit(run)
            elif self.error_label.isHidden():
                self._show_error(f"The trainer ended without writing "
                                 f"{run.folder / runs_mod.ROBUSTNESS_FILE}.")
        else:
            self._show_error(message or "The measurement ended without a report.")
        self._update_controls()
