"""Watching a training run: the trainer process and the live progress view.

:class:`RunProcess` runs ``python -m trainer train --config <run>/config.json`` as a
:class:`~cellviewer.ui.common.trainer_process.TrainerProcess` (never inside the GUI process: a
crash or
an out-of-memory in training cannot take the app down), records its pid in run.json as soon as
it is spawned, passes its events and stderr on, stops it (a ``stop`` line on stdin, SIGTERM and
a kill only after a grace period) or lets it go on without the app (:meth:`RunProcess.detach`).
A trainer that exits without a ``finished``/``stopped``/``error`` event is reported as
*failed*, never as running.

:class:`RunMonitor` shows one run: epoch x of y, elapsed, ETA, samples/s, charts of training and
validation loss and accuracy per epoch with the smoothed per-batch loss, macro-F1, and the log.
It can follow a live process or replay a finished run's ``events.jsonl``.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.formatting import format_clock
from cellviewer.core.training import runs as runs_mod
from cellviewer.core.training.runs import Run, RunSummary
from cellviewer.ui.common.trainer_process import (
    SIGKILL,
    STOP_GRACE_MS,
    TrainerProcess,
    signal_process,
)

if TYPE_CHECKING:
    import pyqtgraph as pg


def _pg():
    """pyqtgraph, imported when the first chart is made (it costs a third of a second, and
    most sessions open no chart)."""
    import pyqtgraph

    return pyqtgraph


#: smoothing of the per-batch loss curve (weight of a new heartbeat's loss in the moving
#: average; a heartbeat already averages the batches of about a second)
BATCH_EMA = 0.3


# --- reading events ---------------------------------------------------------------------------
def field_value(ev: dict, *keys) -> float | None:
    """The first numeric value among ``keys`` in an event; a key may be a path tuple such as
    ``("val", "acc")`` for nested objects. Tolerates the trainer adding or nesting fields."""
    for key in keys:
        cur = ev
        for part in key if isinstance(key, tuple) else (key,):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(cur, bool):
            continue
        if isinstance(cur, int | float) and math.isfinite(cur):
            return float(cur)
    return None


EPOCH_FIELDS = {
    "train_loss": ("train_loss", ("train", "loss")),
    "val_loss": ("val_loss", ("val", "loss"), ("validation", "loss")),
    "train_acc": ("train_acc", "train_accuracy", ("train", "acc"), ("train", "accuracy")),
    "val_acc": ("val_acc", "val_accuracy", ("val", "acc"), ("val", "accuracy")),
    "macro_f1": ("val_macro_f1", "macro_f1", ("val", "macro_f1")),
    "lr": ("lr", "learning_rate"),
    "samples_per_s": ("samples_per_s", "samples_per_sec", "throughput"),
    "elapsed": ("elapsed_s", "elapsed"),
    "eta": ("eta_s", "eta"),
    "best_val_acc": ("best_val_acc",),
    "best_epoch": ("best_epoch",),
}


def epoch_values(ev: dict) -> dict[str, float | None]:
    return {name: field_value(ev, *keys) for name, keys in EPOCH_FIELDS.items()}


#: what to do in the app about each kind of trainer error (protocol.ErrorKind values); the
#: trainer's own message says what went wrong, in command-line terms
ERROR_HINTS = {
    "out-of-memory": "In the training dialog, lower the batch size or choose another device "
                     "(the CPU has the most memory), then start the run again.",
    "missing-weights": "Put the weights file in the folder named under Foundation weights in "
                       "the training dialog (or CELLVIEWER_WEIGHTS_DIR), or choose a model "
                       "trained from scratch.",
    "bad-patchset": "Start a new run: the app writes the patch set again from the project.",
    "unknown-model": "Choose a model from the list in the training dialog.",
    "bad-config": "Check the settings in the training dialog and start a new run.",
    "device": "Choose another device in the training dialog ('auto' or 'CPU').",
    "rank-failed": "One of the training processes (one per GPU) failed or was killed: resume "
                   "the run (it continues from its last model file), or train on one GPU.",
    "bad-model-file": "The run's model file is damaged: repeat the run.",
    "bad-model": "The model file does not fit its architecture (options out of bounds, weights "
                 "missing, of the wrong shape or not numbers): it is damaged or was not "
                 "written by CellViewer's trainer. Choose another model file or train again.",
    "bad-arguments": "The app started the trainer with arguments it does not take: this is a "
                     "fault in CellViewer; the log above tells more.",
    "internal": "This is a fault in the trainer; the log above and the run folder's "
                "events.jsonl tell more. Repeating the run may work.",
}


def error_text(ev: dict) -> str:
    """An error event in words a user can act on: the trainer's message plus what to do in
    the app."""
    message = str(ev.get("message") or ev.get("error") or "The trainer reported an error.")
    hint = ERROR_HINTS.get(str(ev.get("kind") or ""), ERROR_HINTS["internal"])
    return f"{message}\n{hint}"


def notify(parent: QWidget | None, title: str, text: str,
           icon: QMessageBox.Icon = QMessageBox.Icon.Warning) -> QMessageBox:
    """A message box that does not block (``open``, not ``exec``): the event loop, and with it
    every running training's progress, goes on while it is shown."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


# --- the process ------------------------------------------------------------------------------
class RunProcess(QObject):
    """The trainer of one run folder (a
    :class:`~cellviewer.ui.common.trainer_process.TrainerProcess`
    on ``train --config <run>/config.json``), and what the app records about it in run.json.

    Signals: ``event(dict)`` for each protocol event, ``log(str)`` for each line of the
    trainer's stderr, ``status_changed(str)`` with a status from
    :mod:`cellviewer.core.training.runs`,
    and ``ended(str)`` once, with the final status (not after :meth:`detach`).
    """

    event = Signal(dict)
    log = Signal(str)
    status_changed = Signal(str)
    ended = Signal(str)

    def __init__(self, run: Run, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run = run
        self.events: list[dict] = []
        self.status = runs_mod.CREATED
        self.stop_requested = False
        self.shutting_down = False
        self.failure: str | None = None
        self.proc: TrainerProcess | None = None

    # --- control -------------------------------------------------------------------------
    def start(self, extra_args: list[str] | None = None) -> None:
        """Launch the trainer on the run's config.json (``extra_args``: e.g. a resume flag)
        and record its pid in run.json at once: the run reads as running from here on."""
        args = ["train", "--config", str(self.run.config_path), *(extra_args or [])]
        try:
            proc = TrainerProcess(args, self.run.folder, self, processes=self.run.processes)
        except runs_mod.RunError as exc:  # several GPUs asked of an app that cannot
            self.failure = str(exc)
            self.log.emit(self.failure)
            self.run.mark_ended(None, crashed=True, failure=self.failure)
            self._finish(runs_mod.FAILED)
            return
        self.proc = proc
        proc.protocol_event.connect(self._handle_event)
        proc.log.connect(self.log)
        proc.finished.connect(self._on_finished)
        self.log.emit(f"$ {proc.command_line()}")
        if not proc.start():
            self.failure = proc.error
            self.log.emit(self.failure or "")
            self.run.mark_ended(None, crashed=True, failure=self.failure)
            self._finish(runs_mod.FAILED)
            return
        self.run.mark_launched(proc.pid or 0, resumed=bool(extra_args))
        self._set_status(runs_mod.RUNNING)

    @property
    def started_at(self) -> float | None:
        return self.proc.started_at if self.proc is not None else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.is_running() and not self.proc.detached

    def request_stop(self, grace_ms: int = STOP_GRACE_MS) -> None:
        """Ask the trainer to finish its batch, write its model files and stop; end it if it
        has not after ``grace_ms``."""
        if not self.is_running():
            return
        self.stop_requested = True
        self.log.emit("Stop requested: the trainer finishes its batch and writes the model.")
        self.proc.stop(grace_ms)

    def kill(self) -> None:
        if self.is_running():
            self.log.emit("Killing the trainer.")
            self.proc.kill()

    def shutdown(self, grace_ms: int = 3000) -> None:
        """The app is closing (or the project, with "Stop"): stop the trainer (kill after
        ``grace_ms``) and record the run as interrupted, so it can be resumed. Blocks at most
        about ``grace_ms``."""
        if not self.is_running():
            return
        self.shutting_down = True
        self.proc.stop(grace_ms)
        if not self.proc.wait(grace_ms):
            self.proc.kill()
            self.proc.wait(5000)

    def detach(self) -> None:
        """Let the trainer go on in the background, without the app ("Keep running"): it is
        not stopped when the app quits; a later session finds it running from run.json's pid
        and follows its events.jsonl."""
        if not self.is_running():
            return
        self.proc.detach()
        self.run.mark_detached()

    # --- reading -------------------------------------------------------------------------
    def _handle_event(self, ev: dict) -> None:
        self.events.append(ev)
        self.event.emit(ev)

    def _on_finished(self, exit_code: int, crashed: bool) -> None:
        summary = RunSummary.from_events(self.events)
        terminal = summary.finished or summary.stopped or summary.error
        if summary.error is not None:
            status = runs_mod.FAILED
            self.failure = error_text(summary.error)
        elif terminal is not None:
            # as the events say (a stop asked for just as the last epoch ended is "finished")
            status = (runs_mod.STOPPED if runs_mod.is_stop_request(summary.stopped)
                      else runs_mod.FINISHED)
        else:
            status = runs_mod.FAILED
            how = ("was killed" if crashed else f"exited with code {exit_code}")
            tail = self.proc.stderr_tail(5) if self.proc is not None else ""
            self.failure = (f"The trainer {how} before it finished the run"
                            + (f":\n{tail}" if tail else "."))
        if self.shutting_down:
            self.run.mark_ended(exit_code, crashed=False)
            self.run.mark_interrupted()
            status = runs_mod.INTERRUPTED
        else:
            self.run.mark_ended(exit_code, crashed=terminal is None,
                                failure=self.failure if status == runs_mod.FAILED else None)
        if self.failure and status == runs_mod.FAILED:
            self.log.emit(self.failure)
        self._finish(status)

    def _finish(self, status: str) -> None:
        if self.status in runs_mod.TERMINAL:
            return
        self._set_status(status)
        self.ended.emit(status)

    def _set_status(self, status: str) -> None:
        self.status = status
        self.status_changed.emit(status)


# --- charts -----------------------------------------------------------------------------------
def _plot(title: str, y_label: str, legend_offset=(-10, 10), legend_columns: int = 1
          ) -> pg.PlotWidget:
    w = _pg().PlotWidget(background="w")
    w.setTitle(title, color="#222", size="10pt")
    w.setLabel("bottom", "epoch")
    w.setLabel("left", y_label)
    w.showGrid(x=True, y=True, alpha=0.25)
    legend = w.addLegend(offset=legend_offset, labelTextColor="#222", brush=(255, 255, 255, 210),
                         colCount=legend_columns)
    legend.setZValue(100)
    w.setMinimumHeight(150)
    for axis in ("bottom", "left"):
        w.getAxis(axis).setTextPen("#333")
        w.getAxis(axis).setPen("#888")
        w.getAxis(axis).enableAutoSIPrefix(False)  # no "(x0.001)" on a loss axis
    return w


class TrainingCharts(QWidget):
    """Loss and accuracy per epoch (training, validation), the smoothed per-batch loss and the
    validation macro-F1. Fed epoch and batch events; also used for a finished run's curves."""

    def __init__(self, parent: QWidget | None = None, batches: bool = True) -> None:
        super().__init__(parent)
        self.loss_plot = _plot("Loss", "cross-entropy")
        # accuracies rise towards 1: their legend goes in a row at the bottom right
        self.acc_plot = _plot("Accuracy and macro-F1", "", legend_offset=(-10, -10),
                              legend_columns=3)
        self.acc_plot.setYRange(0, 1)
        pen = _pg().mkPen
        # the per-batch curve only where batches are shown (live), so a finished run's
        # legend does not list an empty curve
        self.batch_curve = self.loss_plot.plot(
            name="train (per batch, smoothed)" if batches else None,
            pen=pen("#9ecae1", width=1.5))
        self.train_loss_curve = self.loss_plot.plot(
            name="train", pen=pen("#1f77b4", width=2), symbol="o", symbolSize=6,
            symbolBrush="#1f77b4")
        self.val_loss_curve = self.loss_plot.plot(
            name="validation", pen=pen("#d62728", width=2), symbol="s", symbolSize=6,
            symbolBrush="#d62728")
        self.train_acc_curve = self.acc_plot.plot(
            name="train acc", pen=pen("#1f77b4", width=2), symbol="o", symbolSize=6,
            symbolBrush="#1f77b4")
        self.val_acc_curve = self.acc_plot.plot(
            name="val acc", pen=pen("#d62728", width=2), symbol="s", symbolSize=6,
            symbolBrush="#d62728")
        self.f1_curve = self.acc_plot.plot(
            name="val macro-F1", pen=pen("#2ca02c", width=2, style=Qt.PenStyle.DashLine),
            symbol="t", symbolSize=7, symbolBrush="#2ca02c")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.loss_plot)
        lay.addWidget(self.acc_plot)
        self.clear()

    def clear(self) -> None:
        self.epochs: list[dict] = []  # epoch values, in order of epoch number
        self.batch_x: list[float] = []
        self.batch_y: list[float] = []
        self._ema: float | None = None
        self._last_heartbeat: tuple | None = None  # (epoch, step, running mean)
        self._redraw()

    def add_epoch(self, ev: dict) -> None:
        vals = epoch_values(ev)
        vals["epoch"] = field_value(ev, "epoch") or float(len(self.epochs) + 1)
        self.epochs = [e for e in self.epochs if e["epoch"] != vals["epoch"]] + [vals]
        self.epochs.sort(key=lambda e: e["epoch"])
        self._redraw()

    def add_batch(self, ev: dict, epoch_offset: float) -> None:
        """A batch heartbeat: the loss of the batches since the previous heartbeat joins the
        smoothed curve at a fractional epoch. The trainer reports the running mean over the
        epoch so far (``train_loss`` after ``step`` batches), so the mean of the batches in
        between is ``(m_k * s_k - m_j * s_j) / (s_k - s_j)``."""
        mean = field_value(ev, "train_loss", "loss")
        if mean is None:
            return
        epoch, step = field_value(ev, "epoch"), field_value(ev, "step")
        loss = mean
        prev = self._last_heartbeat
        if step is not None and prev is not None and prev[0] == epoch and step > prev[1]:
            loss = (mean * step - prev[2] * prev[1]) / (step - prev[1])
        self._last_heartbeat = None if step is None else (epoch, step, mean)
        self._ema = loss if self._ema is None else (1 - BATCH_EMA) * self._ema + BATCH_EMA * loss
        self.batch_x.append(epoch_offset)
        self.batch_y.append(self._ema)
        self.batch_curve.setData(self.batch_x, self.batch_y)

    def epoch_count(self) -> int:
        return len(self.epochs)

    def _series(self, key: str) -> tuple[list[float], list[float]]:
        pts = [(e["epoch"], e[key]) for e in self.epochs if e.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    def _redraw(self) -> None:
        # whole epochs on the axis while there are few of them (no "1.2, 1.4" ticks)
        last = max((e["epoch"] for e in self.epochs), default=0.0)
        for plot in (self.loss_plot, self.acc_plot):
            axis = plot.getAxis("bottom")
            if 0 < last <= 12:
                axis.setTickSpacing(major=1.0, minor=1.0)
            else:
                axis.setTickSpacing()
        for curve, key in (
            (self.train_loss_curve, "train_loss"), (self.val_loss_curve, "val_loss"),
            (self.train_acc_curve, "train_acc"), (self.val_acc_curve, "val_acc"),
            (self.f1_curve, "macro_f1"),
        ):
            xs, ys = self._series(key)
            curve.setData(xs, ys)
        self.batch_curve.setData(self.batch_x, self.batch_y)


# --- the monitor ------------------------------------------------------------------------------
STATUS_COLOURS = {
    runs_mod.RUNNING: "#1f6fb2", runs_mod.FINISHED: "#2e7d32", runs_mod.STOPPED: "#8a6d00",
    runs_mod.FAILED: "#c62828", runs_mod.INTERRUPTED: "#8a6d00", runs_mod.CREATED: "#555",
}


class RunMonitor(QWidget):
    """Progress of one run: figures, charts, log, Stop/Kill. Emits ``results_requested(Run)``
    when the user asks for the results of an ended run."""

    results_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run: Run | None = None
        self.process: RunProcess | None = None
        self.status: str | None = None
        self.total_epochs: int | None = None
        self.n_batches: int | None = None
        self.last_eta: tuple[float, float] | None = None  # (eta seconds, monotonic time)
        self.elapsed_base: tuple[float, float] | None = None  # (trainer's elapsed, monotonic)

        self.title = QLabel("No run selected")
        font = QFont(self.title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.title.setFont(font)
        self.status_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.figures: dict[str, QLabel] = {}
        grid = QGridLayout()
        names = [("epoch", "Epoch"), ("elapsed", "Elapsed"), ("eta", "ETA"),
                 ("speed", "Samples/s"), ("val_acc", "Val. accuracy"), ("macro_f1", "Macro-F1"),
                 ("train_loss", "Train loss"), ("val_loss", "Val. loss"), ("lr", "Learning rate")]
        for i, (key, text) in enumerate(names):
            cap = QLabel(text + ":")
            cap.setStyleSheet("color: #555;")
            val = QLabel("–")
            self.figures[key] = val
            grid.addWidget(cap, i // 3, 2 * (i % 3))
            grid.addWidget(val, i // 3, 2 * (i % 3) + 1)
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(
            "background: #fdecea; color: #8b1a1a; border: 1px solid #e0a0a0; padding: 6px;")
        self.error_label.hide()

        self.charts = TrainingCharts()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText("The trainer's log")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(max(7.0, mono.pointSizeF() * 0.9))
        self.log_view.setFont(mono)

        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Finish the current batch, write the model and stop")
        self.stop_button.clicked.connect(self.stop)
        self.kill_button = QPushButton("Kill")
        self.kill_button.setToolTip("End the trainer at once (the last saved model is kept)")
        self.kill_button.clicked.connect(self.kill)
        self.results_button = QPushButton("Results…")
        self.results_button.clicked.connect(self._request_results)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status_label, 1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.kill_button)
        buttons.addWidget(self.results_button)

        top = QWidget()
        top_lay = QVBoxLayout(top)
        top_lay.setContentsMargins(0, 0, 0, 0)
        top_lay.addWidget(self.title)
        top_lay.addWidget(self.progress)
        top_lay.addLayout(grid)
        top_lay.addWidget(self.error_label)
        top_lay.addWidget(self.charts, 1)
        split = QSplitter()
        split.setOrientation(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.log_view)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addLayout(buttons)

        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_clock)
        self._follow = QTimer(self)
        self._follow.setInterval(500)
        self._follow.timeout.connect(self._poll_file)
        self._follow_offset = 0
        self._follow_buffer = None
        self._detached_stop = False
        self._update_buttons()

    # --- binding -------------------------------------------------------------------------
    def show_run(self, run: Run, process: RunProcess | None = None) -> None:
        """Show ``run``: follow ``process`` live when given, else replay its events.jsonl."""
        if self.process is not None:
            for sig, slot in self._connections():
                with contextlib.suppress(RuntimeError, TypeError):
                    sig.disconnect(slot)
        self.run, self.process = run, process
        self.charts.clear()
        self.log_view.clear()
        self.error_label.hide()
        self.total_epochs = self.n_batches = None
        self.last_eta = self.elapsed_base = None
        for lab in self.figures.values():
            lab.setText("–")
        self.title.setText(f"Run: {run.name}")
        self._follow.stop()
        self._follow_offset = 0
        self._follow_buffer = None
        self._detached_stop = False
        if process is not None:
            events = process.events
        else:
            from trainer.formats.protocol import LineBuffer

            self._follow_buffer = LineBuffer()
            events = self._read_new_events()
        for ev in events:
            self.handle_event(ev, live=False)
        if process is not None:
            for sig, slot in self._connections():
                sig.connect(slot)
            status = process.status
            if process.failure:
                self._show_error(process.failure)
        else:
            status = run.status()
            summary = RunSummary.from_events(events)
            if summary.error:
                self._show_error(error_text(summary.error))
            elif status == runs_mod.FAILED:
                self._show_error(run.meta.get("failure") or "The trainer ended before it "
                                 "finished the run.")
            elif status == runs_mod.INTERRUPTED:
                self._show_error("The app closed while this run was going. Resume it from the "
                                 "run list to continue from its last saved model.")
            elif status == runs_mod.RUNNING:
                # started by an earlier session of the app and still training: follow its file
                self.append_log("Following this run from its events.jsonl (started by an "
                                "earlier session of the app).")
                self._follow.start()
        self._set_status(status)

    # --- a run without a process here: follow its events.jsonl --------------------------
    def _read_new_events(self) -> list[dict]:
        try:
            with open(self.run.events_path, "rb") as fh:
                fh.seek(self._follow_offset)
                data = fh.read()
        except OSError:
            return []
        self._follow_offset += len(data)
        return self._follow_buffer.feed(data)

    def following(self) -> bool:
        return self._follow.isActive()

    def _poll_file(self) -> None:
        if self.run is None or self._follow_buffer is None:
            self._follow.stop()
            return
        for ev in self._read_new_events():
            self.handle_event(ev, live=True)
        status = self.run.reload().status()
        if status != runs_mod.RUNNING:
            self._follow.stop()
            self._set_status(status)
            self.figures["eta"].setText("–")

    def _connections(self):
        p = self.process
        return [(p.event, self._live_event), (p.log, self.append_log),
                (p.status_changed, self._set_status), (p.ended, self._on_ended)]

    # --- events --------------------------------------------------------------------------
    def _live_event(self, ev: dict) -> None:
        self.handle_event(ev, live=True)

    def handle_event(self, ev: dict, live: bool = True) -> None:
        kind = ev.get("event")
        now = time.monotonic()
        if kind == "started":
            total = RunSummary(started=ev).total_epochs
            self.total_epochs = total or self.total_epochs
            nb = field_value(ev, "steps_per_epoch", "batches_per_epoch", "n_batches")
            self.n_batches = int(nb) if nb else None
            device = ev.get("device")
            sizes = []
            for key, label in (("n_train", "train"), ("n_train_augmented", "augmented train"),
                               ("n_val", "validation")):
                if isinstance(ev.get(key), int):
                    sizes.append(f"{ev[key]:,} {label}")
            name = ev.get("device_name")
            where = f"{device} ({name})" if device and name and name != device else device
            self.append_log("Started" + (f" on {where}" if where else "")
                            + (f": {', '.join(sizes)} samples" if sizes else ""))
            start = field_value(ev, "start_epoch")
            if start and start > 1:
                self.append_log(f"Resumed at epoch {int(start)}")
            self.elapsed_base = (field_value(ev, "elapsed_s") or 0.0, now)
        elif kind == "epoch":
            self.charts.add_epoch(ev)
            vals = epoch_values(ev)
            ep = int(field_value(ev, "epoch") or self.charts.epoch_count())
            total = int(field_value(ev, "epochs", "total_epochs") or self.total_epochs or 0)
            self.total_epochs = total or self.total_epochs
            self.figures["epoch"].setText(f"{ep} of {total}" if total else str(ep))
            if total:
                self.progress.setRange(0, 1000 * total)
                self.progress.setValue(1000 * min(ep, total))
                self.progress.setFormat(f"epoch {ep} of {total}")
            for key, fmt in (("val_acc", "{:.3f}"), ("macro_f1", "{:.3f}"),
                             ("train_loss", "{:.4f}"), ("val_loss", "{:.4f}"), ("lr", "{:.2g}")):
                if vals.get(key) is not None:
                    self.figures[key].setText(fmt.format(vals[key]))
            if vals.get("samples_per_s") is not None:
                self.figures["speed"].setText(f"{vals['samples_per_s']:,.0f}")
            if vals.get("elapsed") is not None:
                self.elapsed_base = (vals["elapsed"], now)
            if vals.get("eta") is not None:
                self.last_eta = (vals["eta"], now)
            if not live:
                self.figures["elapsed"].setText(format_clock(vals.get("elapsed")))
                self.figures["eta"].setText(format_clock(vals.get("eta")))
        elif kind == "batch":
            ep = field_value(ev, "epoch") or (self.charts.epoch_count() + 1)
            b = field_value(ev, "step", "batch")
            nb = field_value(ev, "steps", "n_batches", "batches_per_epoch") or self.n_batches
            frac = (b / nb) if (b is not None and nb) else 0.5
            self.charts.add_batch(ev, ep - 1 + min(max(frac, 0.0), 1.0))
            sps = field_value(ev, "samples_per_s", "samples_per_sec")
            if sps is not None:
                self.figures["speed"].setText(f"{sps:,.0f}")
            total = field_value(ev, "epochs")
            if total:
                self.total_epochs = int(total)
                self.figures["epoch"].setText(f"{int(ep)} of {int(total)}")
                self.progress.setRange(0, 1000 * int(total))
                self.progress.setValue(int(1000 * (ep - 1 + min(max(frac, 0.0), 1.0))))
                self.progress.setFormat(f"epoch {int(ep)} of {int(total)}")
            eta = field_value(ev, "eta_s", "eta")
            if eta is not None:
                self.last_eta = (eta, now)
            elapsed = field_value(ev, "elapsed_s", "elapsed")
            if elapsed is not None:
                self.elapsed_base = (elapsed, now)
        elif kind == "checkpoint":
            path = ev.get("path") or ev.get("model_path") or ""
            self.append_log(f"Checkpoint written {path}".rstrip())
        elif kind == "stopped":
            detail = ev.get("detail")
            self.append_log(f"Stopped: {ev.get('reason', '')}" + (f" ({detail})" if detail else ""))
        elif kind == "finished":
            self.append_log("Finished" + (f": model {ev.get('model_path')}"
                                          if ev.get("model_path") else ""))
            if self.total_epochs:
                self.progress.setValue(self.progress.maximum())
        elif kind == "error":
            self._show_error(error_text(ev))
            self.append_log("Error: " + str(ev.get("message", "")))
        elif kind == "notice":
            self.append_log("Note: " + str(ev.get("message", "")))
        if live:
            self._update_clock()

    def append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def _on_ended(self, status: str) -> None:
        self._tick.stop()
        if status == runs_mod.FAILED and self.process is not None and self.process.failure:
            self._show_error(self.process.failure)
        self.figures["eta"].setText("–")
        self._update_buttons()

    def _set_status(self, status: str) -> None:
        colour = STATUS_COLOURS.get(status, "#555")
        self.status_label.setText(f"<b style='color:{colour}'>{status}</b>")
        self.status = status
        if status == runs_mod.RUNNING and (self.process is not None or self.following()):
            self._tick.start()
        else:
            self._tick.stop()
        self._update_buttons()

    def _update_clock(self) -> None:
        now = time.monotonic()
        if self.elapsed_base is not None:
            base, at = self.elapsed_base
            self.figures["elapsed"].setText(format_clock(base + now - at))
        elif self.process is not None and self.process.started_at is not None:
            self.figures["elapsed"].setText(format_clock(now - self.process.started_at))
        if self.last_eta is not None:
            eta, at = self.last_eta
            self.figures["eta"].setText(format_clock(max(0.0, eta - (now - at))))

    def _update_buttons(self) -> None:
        if self.process is not None:
            live = self.process.is_running()
            stopping = self.process.stop_requested
        else:  # a run followed from its file
            live = self.following()
            stopping = self._detached_stop
        self.stop_button.setEnabled(live and not stopping)
        self.kill_button.setVisible(live and stopping)
        ended = self.run is not None and not live and self.status in (
            runs_mod.FINISHED, runs_mod.STOPPED, runs_mod.INTERRUPTED)
        self.results_button.setEnabled(bool(ended))

    # --- actions -------------------------------------------------------------------------
    def _request_results(self) -> None:
        if self.run is not None:
            self.results_requested.emit(self.run)

    def stop(self) -> None:
        if self.process is not None:
            self.process.request_stop()
        elif self.following() and self._signal_detached(signal.SIGTERM):
            # no pipe to that trainer: SIGTERM is its other way to ask for a clean stop
            self._detached_stop = True
            self.append_log("Stop requested (SIGTERM): the trainer finishes its batch and "
                            "writes the model.")
        self._update_buttons()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
        elif self.following():
            self._signal_detached(SIGKILL)

    def _signal_detached(self, signum: int) -> bool:
        if self.run is None:
            return False
        return signal_process(self.run.meta.get("pid"), self.run.meta.get("pid_token"), signum)
