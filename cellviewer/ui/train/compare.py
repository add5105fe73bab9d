"""The Compare runs window: the scaling chart (a metric against FlagLimit per model, the mean
over seeds with ± sd bars and each seed's point) and a sortable table of the runs, over the
project's training runs or a sweep folder (``python -m trainer sweep``).

The rows come from :mod:`trainer.formats.sweep_results` (torch-free; the report reads them the
same way), read off the GUI thread through :mod:`cellviewer.ui.common.tasks`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from cellviewer.ui.common.tasks import NEWEST, TaskRunner

#: the chart's metrics: (row key, label)
METRICS = [("val_macro_f1", "validation macro-F1"),
           ("val_macro_f1_common", "validation macro-F1, classes at every scale"),
           ("val_weighted_f1", "validation weighted F1"),
           ("val_accuracy", "validation accuracy"),
           ("test_macro_f1", "test macro-F1"),
           ("test_accuracy", "test accuracy")]
#: the table's columns: (row key, header, digits or None for text)
COLUMNS = [("run_id", "run", None), ("model", "model", None), ("flag_limit", "FlagLimit", None),
           ("seed", "seed", 0), ("val_accuracy", "val acc", 3), ("val_macro_f1", "val macro-F1", 3),
           ("val_macro_f1_common", "val macro-F1 (common)", 3),
           ("val_weighted_f1", "val weighted F1", 3), ("test_accuracy", "test acc", 3),
           ("test_macro_f1", "test macro-F1", 3), ("drop_slope_post", "drop slope post", 4),
           ("drop_slope_pre", "drop slope pre", 4), ("params", "parameters", 0),
           ("latency_b1_ms", "batch-1 ms", 3), ("gflops", "GFLOPs", 4),
           ("train_s", "train s", 1)]
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def load_rows(roots: list[str], state) -> list[dict]:
    """The work function: every run under ``roots`` (Qt-free)."""
    from trainer.formats.sweep_results import collect

    state.set_status("reading runs")
    return collect(roots)


class _NumberItem(QTableWidgetItem):
    """A cell that sorts by its number (empty cells last)."""

    def __init__(self, value, digits: int | None) -> None:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) \
            else None
        if digits is None or number is None:
            text = "" if value is None else str(value)
        else:
            text = f"{number:,.0f}" if digits == 0 else f"{number:.{digits}f}"
        super().__init__(text)
        if number is None and value is not None and str(value).isdigit():
            number = float(str(value))  # a FlagLimit label
        self.key = (0, float(number)) if number is not None else (1, 0.0) if not text \
            else (0.5, 0.0)
        self.text_key = text
        if digits is not None:
            self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other) -> bool:
        if isinstance(other, _NumberItem) and self.key != other.key:
            return self.key < other.key
        return self.text_key < getattr(other, "text_key", other.text())


class CompareRunsWindow(QDialog):
    """Compare training runs: the scaling chart and the table (see the module docstring)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("compare_runs")
        self.setWindowTitle("Compare runs")
        self.setModal(False)
        self.rows: list[dict] = []
        self.roots: list[str] = []
        self.runner = TaskRunner(NEWEST, parent=self)

        self.source = QLabel("No runs")
        self.source.setObjectName("compare_source")
        self.open_button = QPushButton("Open sweep folder…")
        self.open_button.clicked.connect(self.choose_folder)
        self.metric_box = QComboBox()
        self.metric_box.setObjectName("compare_metric")
        for key, label in METRICS:
            self.metric_box.addItem(label, key)
        self.metric_box.currentIndexChanged.connect(self.draw_chart)
        top = QHBoxLayout()
        top.addWidget(self.source, 1)
        top.addWidget(QLabel("Chart:"))
        top.addWidget(self.metric_box)
        top.addWidget(self.open_button)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("compare_chart")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "FlagLimit (cells per class)")
        self.plot.addLegend(offset=(-10, 10))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("compare_table")
        self.table.setHorizontalHeaderLabels([c[1] for c in COLUMNS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.verticalHeader().setVisible(False)
        self.table.setSortingEnabled(True)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.resize(1100, 720)

    # --- loading -------------------------------------------------------------------------
    def load(self, roots: list[str | os.PathLike], label: str | None = None):
        """Read the runs under ``roots`` in the background; returns the task."""
        self.roots = [str(r) for r in roots]
        self.source.setText(f"Reading {label or ', '.join(self.roots)}…")
        return self.runner.start(load_rows, self.roots,
                                 done=lambda rows: self.show_rows(rows, label),
                                 failed=lambda msg: self.source.setText(f"Cannot read: {msg}"))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open sweep folder",
                                                  self.roots[0] if self.roots else "")
        if folder:
            self.load([folder])

    def show_rows(self, rows: list[dict], label: str | None = None) -> None:
        self.rows = [r for r in rows if r.get("val_macro_f1") is not None
                     or r.get("test_macro_f1") is not None]
        models = sorted({r["model"] for r in self.rows})
        where = label or ", ".join(Path(r).name for r in self.roots)
        self.source.setText(f"{where}: {len(self.rows)} evaluated runs, {len(models)} models"
                            if self.rows else f"{where}: no evaluated runs")
        self.fill_table()
        self.draw_chart()

    # --- the views -----------------------------------------------------------------------
    def fill_table(self) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, (key, _, digits) in enumerate(COLUMNS):
                self.table.setItem(i, j, _NumberItem(row.get(key), digits))
        # the rows come in the order model, FlagLimit, seed: kept until a header is clicked
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def draw_chart(self) -> None:
        from trainer.formats.sweep_results import group, limits_of

        key = self.metric_box.currentData()
        self.plot.clear()
        legend = self.plot.plotItem.legend
        if legend is not None:
            legend.clear()
        self.plot.setLabel("left", self.metric_box.currentText())
        limits = limits_of(self.rows)
        x_of = {lim: i for i, lim in enumerate(limits)}
        self.plot.getAxis("bottom").setTicks([[(i, lim) for i, lim in enumerate(limits)]])
        self.series: dict[str, dict] = {}
        for n, (model, per) in enumerate(group(self.rows, key).items()):
            colour = QColor(COLOURS[n % len(COLOURS)])
            xs = [float(x_of[lim]) for lim in per]
            means = [s.mean for s in per.values()]
            sds = [s.sd for s in per.values()]
            self.plot.plot(xs, means, pen=pg.mkPen(colour, width=2), symbol="o",
                           symbolBrush=colour, symbolPen=colour, name=model)
            self.plot.addItem(pg.ErrorBarItem(x=np.array(xs), y=np.array(means),
                                              height=2 * np.array(sds), beam=0.12,
                                              pen=pg.mkPen(colour, width=1)))
            seeds = [(float(x_of[r["flag_limit"]]), float(r[key])) for r in self.rows
                     if r["model"] == model and isinstance(r.get(key), int | float)]
            faint = QColor(colour)
            faint.setAlpha(110)
            self.plot.plot([p[0] for p in seeds], [p[1] for p in seeds], pen=None, symbol="x",
                           symbolSize=7, symbolPen=faint)
            self.series[model] = {"x": xs, "mean": means, "sd": sds}
        self.plot.setXRange(-0.3, max(len(limits) - 0.7, 0.3))
