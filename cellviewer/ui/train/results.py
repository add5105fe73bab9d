"""The results of a finished training run: summary, per-class table, the normalised confusion
matrix as a heatmap, the blur robustness of its model (:mod:`cellviewer.ui.train.blur`), the
final training curves, and "Make active model".

The numbers come from the run's ``finished`` event (its ``metrics``: accuracy, macro precision,
recall and F1, ``per_class``, ``confusion``/``confusion_normalized``), or, where the trainer
wrote them, from the evaluation JSON in the run folder. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import html
import json
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QPointF,
    QRectF,
    QSize,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import QColor, QDesktopServices, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.formatting import format_clock
from cellviewer.core.training import runs as runs_mod
from cellviewer.core.training.runs import Run, RunSummary
from cellviewer.ui.train.blur import BlurRobustnessView
from cellviewer.ui.train.monitor import (
    TrainingCharts,
    field_value,
    notify,
)

RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
#: evaluation files the trainer may write in a run folder, most specific first
EVALUATION_FILES = ("evaluation.json", "eval/metrics.json", "metrics.json", "eval.json")


def run_metrics(run: Run, summary: RunSummary | None = None) -> dict:
    """The validation metrics of a run as one dict (see the module docstring): the finished
    event's ``metrics``, completed from an evaluation JSON file where the event lacks the
    per-class table or the confusion matrix."""
    summary = summary or run.summary()
    metrics: dict = {}
    if summary.finished and isinstance(summary.finished.get("metrics"), dict):
        metrics = dict(summary.finished["metrics"])
    if "per_class" not in metrics or "confusion" not in metrics:
        for name in EVALUATION_FILES:
            path = run.folder / name
            if not path.is_file():
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and ("per_class" in data or "confusion" in data):
                metrics = {**data, **{k: v for k, v in metrics.items() if v is not None}}
                break
    if "classes" not in metrics and summary.classes:
        metrics["classes"] = summary.classes
    return metrics


def normalised_confusion(metrics: dict) -> np.ndarray | None:
    """Row-normalised confusion matrix (true class down, predicted across)."""
    m = metrics.get("confusion_normalized")
    if m is None and metrics.get("confusion") is not None:
        c = np.asarray(metrics["confusion"], dtype=np.float64)
        rows = c.sum(axis=1, keepdims=True)
        m = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0)
    return None if m is None else np.asarray(m, dtype=np.float64)


# --- the heatmap ------------------------------------------------------------------------------
def _blend(t: float) -> QColor:
    """White (0) to deep blue (1)."""
    t = min(max(t, 0.0), 1.0)
    lo, hi = (247, 251, 255), (8, 48, 107)
    return QColor(*(round(a + (b - a) * t) for a, b in zip(lo, hi, strict=True)))


class ConfusionHeatmap(QWidget):
    """The row-normalised confusion matrix as coloured cells with their values, class names
    down the left (true) and along the bottom (predicted, slanted)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix = np.zeros((0, 0))
        self.counts: np.ndarray | None = None
        self.classes: list[str] = []
        self.setMouseTracking(True)
        self.setMinimumSize(260, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_matrix(self, matrix: np.ndarray | None, classes: list[str],
                   counts: np.ndarray | None = None) -> None:
        self.matrix = np.zeros((0, 0)) if matrix is None else np.asarray(matrix, float)
        self.classes = list(classes)
        self.counts = None if counts is None else np.asarray(counts)
        self.update()

    def sizeHint(self) -> QSize:  # Qt naming
        return QSize(420, 380)

    TOP = 24.0  # room for the title

    def _geometry(self) -> tuple[float, float, float]:
        """Left edge of the matrix, room below it for the slanted names, side of a cell."""
        fm = QFontMetrics(self.font())
        k = max(len(self.matrix), 1)
        label_w = max((fm.horizontalAdvance(c) for c in self.classes), default=20) + 10
        label_col = min(label_w + fm.height() + 6, self.width() * 0.45)
        bottom = min(label_w * 0.72 + fm.height() + 10, self.height() * 0.45)
        cell = max(4.0, min((self.width() - label_col - 10) / k,
                            (self.height() - bottom - self.TOP) / k, 64.0))
        spare = max(0.0, self.width() - label_col - 10 - cell * k)
        return label_col + spare / 2, bottom, cell

    def paintEvent(self, event) -> None:  # Qt naming
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        k = len(self.matrix)
        if k == 0:
            p.setPen(QColor("#777"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No confusion matrix")
            return
        left, bottom, cell = self._geometry()
        top = self.TOP
        fm = QFontMetrics(self.font())
        p.setPen(QColor("#222"))
        title = QFont(self.font())
        title.setBold(True)
        p.setFont(title)
        p.drawText(QRectF(0, 0, self.width(), top), Qt.AlignmentFlag.AlignCenter,
                   "Confusion matrix, normalised per true class")
        # values in the cells, in a font that fits "0.00" into a cell (none when too small)
        small = QFont(self.font())
        width = QFontMetrics(small).horizontalAdvance(".00")
        if width > cell * 0.85:
            small.setPointSizeF(small.pointSizeF() * cell * 0.85 / width)
        show_values = small.pointSizeF() >= 6.0
        p.setFont(small)
        for i in range(k):
            for j in range(k):
                v = float(self.matrix[i, j])
                r = QRectF(left + j * cell, top + i * cell, cell, cell)
                p.fillRect(r, _blend(v))
                if show_values and v > 0.004:
                    p.setPen(QColor("white") if v > 0.5 else QColor("#222"))
                    text = "1" if v >= 0.995 else f"{v:.2f}"[1:]  # ".35": two digits fit
                    p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
        p.setPen(QPen(QColor("#999"), 1))
        p.drawRect(QRectF(left, top, cell * k, cell * k))
        p.setFont(self.font())
        p.setPen(QColor("#222"))
        label_x = fm.height() + 2
        for i, name in enumerate(self.classes[:k]):
            width = left - label_x - 4
            text = fm.elidedText(name, Qt.TextElideMode.ElideRight, int(width))
            p.drawText(QRectF(label_x, top + i * cell, width, cell),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
        for j, name in enumerate(self.classes[:k]):
            p.save()
            p.translate(QPointF(left + (j + 0.5) * cell + fm.ascent() / 3, top + k * cell + 4))
            p.rotate(45)
            text = fm.elidedText(name, Qt.TextElideMode.ElideRight, int(bottom * 1.3))
            p.drawText(QPointF(0, 0), text)
            p.restore()
        p.save()
        p.translate(QPointF(left - max(fm.horizontalAdvance(c) for c in self.classes[:k])
                            - fm.height() - 6, top + k * cell / 2))
        p.rotate(-90)
        p.drawText(QRectF(-k * cell / 2, -fm.height(), k * cell, fm.height()),
                   Qt.AlignmentFlag.AlignCenter, "true class")
        p.restore()
        y = min(self.height(), top + k * cell + bottom) - fm.height() - 2
        p.drawText(QRectF(left, y, k * cell, fm.height()), Qt.AlignmentFlag.AlignCenter,
                   "predicted class")

    def mouseMoveEvent(self, event) -> None:  # Qt naming
        k = len(self.matrix)
        if k == 0:
            return
        left, _bottom, cell = self._geometry()
        j = int((event.position().x() - left) // cell)
        i = int((event.position().y() - self.TOP) // cell)
        if 0 <= i < k and 0 <= j < k:
            text = (f"true {self.classes[i]} → predicted {self.classes[j]}: "
                    f"{self.matrix[i, j]:.3f}")
            if self.counts is not None:
                text += f" ({int(self.counts[i, j])} cells)"
            QToolTip.showText(event.globalPosition().toPoint(), text, self)
        else:
            QToolTip.hideText()


# --- the view ---------------------------------------------------------------------------------
class ResultsView(QWidget):
    """Everything about one ended run. ``make_active(run)`` is requested through the signal
    ``activate_requested(Run)``; the owner registers the model and answers with
    :meth:`set_active`. ``robustness_measured(Run)``: the blur tab wrote a new
    ``robustness.json`` (the run list may want to refresh)."""

    activate_requested = Signal(object)  # Run
    finetune_requested = Signal(object)  # Run: a new run starting from its best model
    robustness_measured = Signal(object)  # Run

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run: Run | None = None
        self.metrics: dict = {}
        self.title = QLabel("")
        font = QFont(self.title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.title.setFont(font)
        self.summary_label = QLabel("")
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.class_table = QTableWidget(0, 5)
        self.class_table.setHorizontalHeaderLabels(
            ["Class", "Precision", "Recall", "F1", "Support"])
        self.class_table.verticalHeader().hide()
        self.class_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.class_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, 5):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.class_table.setMinimumWidth(330)
        self.heatmap = ConfusionHeatmap()
        self.blur = BlurRobustnessView()
        self.blur.measured.connect(self.robustness_measured)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.heatmap, "Confusion matrix")
        self.tabs.addTab(self.blur, "Blur robustness")
        self.charts = TrainingCharts(batches=False)

        self.activate_button = QPushButton("Make active model")
        self.activate_button.setToolTip("Use this run's model for prediction in this project")
        self.activate_button.clicked.connect(self.request_activate)
        self.finetune_button = QPushButton("Fine-tune…")
        self.finetune_button.setToolTip(
            "A new training run that starts from this run's best model (after correcting or "
            "adding labels: predict, correct, retrain)")
        self.finetune_button.clicked.connect(self.request_finetune)
        self.folder_button = QPushButton("Open run folder")
        self.folder_button.clicked.connect(self.open_folder)
        self.active_label = QLabel("")

        upper = QSplitter(Qt.Orientation.Horizontal)
        upper.addWidget(self.class_table)
        upper.addWidget(self.tabs)
        upper.setStretchFactor(0, 2)
        upper.setStretchFactor(1, 3)
        upper.setSizes([350, 610])  # the blur tab needs the width more
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(upper)
        body.addWidget(self.charts)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setSizes([430, 260])
        buttons = QHBoxLayout()
        buttons.addWidget(self.active_label, 1)
        buttons.addWidget(self.folder_button)
        buttons.addWidget(self.finetune_button)
        buttons.addWidget(self.activate_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.summary_label)
        lay.addWidget(body, 1)
        lay.addLayout(buttons)

    @staticmethod
    def _started_from(started: dict) -> str:
        """Where a fine-tuned run's weights came from: "run cnn-1's best model" when the
        file is another run's of this project, else the file's name."""
        path = Path(str(started["init_from"]))
        where = (f"run {path.parent.name}'s {path.stem} model"
                 if path.parent.parent.name.endswith(".runs") else path.name)
        text = f"<b>started from</b> {html.escape(where, quote=False)}"
        matched, new = started.get("init_classes_matched"), started.get("init_classes_new")
        if isinstance(matched, list) and isinstance(new, list):
            text += f" ({len(matched)} of {len(matched) + len(new)} classes carried over"
            names = html.escape(", ".join(map(str, new)), quote=False)
            text += f"; new: {names})" if new else ")"
        return text

    def show_run(self, run: Run) -> None:
        self.run = run
        summary = run.summary()
        self.metrics = metrics = run_metrics(run, summary)
        status = run.status()
        cfg: dict = {}
        with contextlib.suppress(runs_mod.RunError):
            cfg = run.config()
        self.title.setText(f"Results: {run.name}")
        fin = summary.finished or {}
        started = summary.started or {}
        best_epoch = fin.get("best_epoch")
        if best_epoch is None and summary.epochs:
            best_epoch = summary.epochs[-1].get("best_epoch")

        def pct(key: str) -> str:
            v = field_value(metrics, key)
            return "–" if v is None else f"{v:.3f}"

        acc = field_value(metrics, "accuracy", "val_acc")
        lines = [
            f"<b>Model</b> {cfg.get('model', '?')} · <b>status</b> {status} · "
            f"<b>best epoch</b> {best_epoch if best_epoch is not None else '–'} of "
            f"{fin.get('epochs_run', len(summary.epochs))}"
            + (f" · <b>stopped</b> {fin.get('reason')}" if fin.get("reason") else ""),
            f"<b>Validation accuracy</b> {'–' if acc is None else f'{acc:.3f}'} · "
            f"<b>macro precision</b> {pct('macro_precision')} · "
            f"<b>macro recall</b> {pct('macro_recall')} · <b>macro-F1</b> {pct('macro_f1')}",
        ]
        sizes = []
        for key, label in (("n_train", "training"), ("n_train_augmented", "after augmentation"),
                           ("n_val", "validation")):
            if isinstance(started.get(key), int):
                sizes.append(f"{started[key]:,} {label}")
        extra = []
        if cfg.get("flag_limit"):
            extra.append(f"FlagLimit {cfg['flag_limit']}")
        if started.get("device"):
            extra.append(f"device {started.get('device_name') or started['device']}")
        if fin.get("elapsed_s") is not None:
            extra.append(f"training time {format_clock(fin['elapsed_s'])}")
        if started.get("excluded_classes"):
            extra.append("excluded: " + ", ".join(map(str, started["excluded_classes"])))
        if sizes or extra:
            lines.append(" · ".join(sizes + extra))
        if started.get("init_from"):
            lines.append(self._started_from(started))
        self.summary_label.setText("<br>".join(lines))

        per_class = metrics.get("per_class") or []
        self.class_table.setRowCount(len(per_class))
        for row, pc in enumerate(per_class):
            values = [str(pc.get("class", row))]
            for key in ("precision", "recall", "f1"):
                v = field_value(pc, key)
                values.append("–" if v is None else f"{v:.3f}")
            values.append(str(pc.get("support", "")))
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(RIGHT)
                self.class_table.setItem(row, col, item)
        classes = metrics.get("classes") or [pc.get("class", str(i))
                                             for i, pc in enumerate(per_class)]
        counts = metrics.get("confusion")
        self.heatmap.set_matrix(normalised_confusion(metrics), [str(c) for c in classes],
                                None if counts is None else np.asarray(counts))
        self.blur.show_run(run)
        self.charts.clear()
        for ev in summary.epochs:
            self.charts.add_epoch(ev)
        has_model = run.model_path() is not None
        self.activate_button.setEnabled(has_model)
        self.finetune_button.setEnabled((run.folder / runs_mod.BEST_MODEL).is_file())
        if not has_model:
            self.active_label.setText("This run has no model file.")
        elif run.meta.get("model_id") is not None:
            self.active_label.setText(f"Registered in the project as model "
                                      f"#{run.meta['model_id']}.")
        else:
            self.active_label.setText("")

    # a measurement belongs to the run on show: it ends with the window (not when the window is
    # minimised, nor when the other tab is chosen)
    def hideEvent(self, event) -> None:  # Qt naming
        if not event.spontaneous():
            self.blur.cancel()
        super().hideEvent(event)

    def closeEvent(self, event) -> None:  # Qt naming
        self.blur.cancel()
        super().closeEvent(event)

    def request_activate(self) -> None:
        if self.run is not None:
            self.activate_requested.emit(self.run)

    def request_finetune(self) -> None:
        if self.run is not None:
            self.finetune_requested.emit(self.run)

    def set_active(self, model_id: int) -> None:
        self.active_label.setText(f"Active model for prediction: #{model_id} ({self.run.name})")

    def show_error(self, message: str) -> None:
        notify(self, "Make active model", message)

    def open_folder(self) -> None:
        if self.run is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.run.folder))))
