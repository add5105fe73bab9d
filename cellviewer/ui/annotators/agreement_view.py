"""Analyze → Annotator agreement…: how much the annotators of a merged project agree.

The figures are the core's (:func:`cellviewer.core.merge.agreement.project_agreement`: percent
agreement, Cohen's κ per pair, Fleiss' κ for three or more, per-class agreement and each pair's
confusion matrix, each with its number of cells), computed in the background on a read-only
connection of the worker's own (they read every cell's history). The window shows them for the
whole project, or for one image or one region (the scope), as three tables and a heatmap of
the confusion matrix between two chosen annotators (a table of counts whose cells are shaded
by count: exact numbers, no plotting library); Export CSV writes every figure of the scope, the
rows of ``cellviewer annotator-agreement --csv``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from cellviewer.core.merge.agreement import (
    Agreement,
    PairAgreement,
    agreement_rows,
    project_agreement,
)
from cellviewer.ui.common import folders
from cellviewer.ui.common.tasks import NEWEST, TaskRunner

SCOPES = (("project", None), ("per image", "image"), ("per region", "region"))
CSV_FIELDS = ["group", "figure", "annotators", "class", "value", "cells"]


def number(v: float | None) -> str:
    """A figure as shown: three decimals, "n/a" where it is undefined."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _item(text: str, align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().hide()
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    # fitted once after each fill (ResizeToContents measured every row at every insert)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    t.horizontalHeader().setStretchLastSection(True)
    t.verticalHeader().setDefaultSectionSize(22)
    return t


def short_names(names: list[str], least: int = 4) -> list[str]:
    """The shortest prefixes (at least ``least`` characters) that tell the names apart: the
    matrix's column headers, so a dozen classes fit across (the full names are the rows')."""
    for n in range(least, max((len(x) for x in names), default=0) + 1):
        cut = [x[:n] for x in names]
        if len(set(cut)) == len(names):
            return cut
    return list(names)


def heat_colour(count: int, peak: int, diagonal: bool) -> QColor:
    """White to blue by count (agreement, on the diagonal) or white to red (disagreement);
    ``peak``: the largest count of its kind (diagonal or not), so a few disagreements show
    beside a hundred agreements."""
    f = 0.0 if peak <= 0 else count / peak
    r, g, b = (33, 102, 172) if diagonal else (178, 24, 43)
    return QColor(round(255 + (r - 255) * f), round(255 + (g - 255) * f),
                  round(255 + (b - 255) * f))


class AgreementWindow(QDialog):
    """The agreement window (non-modal). ``computed(list)``: the Agreements of a scope, once
    shown."""

    computed = Signal(object)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setObjectName("agreement_window")
        self.setWindowTitle("Annotator agreement")
        self.setModal(False)
        self.window_ = window
        self.runner = TaskRunner(NEWEST, 1, self)
        self.results: list[Agreement] = []
        self._ticket = 0

        self.scope_combo = QComboBox()
        for text, by in SCOPES:
            self.scope_combo.addItem(text, by)
        self.group_combo = QComboBox()
        self.group_combo.setMinimumContentsLength(24)
        self.refresh_button = QPushButton("Refresh")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.pairs = _table(["annotator A", "annotator B", "cells", "agreement",
                             "Cohen's κ"])
        self.classes = _table(["class", "agreement", "cells"])
        self.a_combo, self.b_combo = QComboBox(), QComboBox()
        self.matrix = QTableWidget(0, 0)
        self.matrix.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.matrix.verticalHeader().setDefaultSectionSize(22)
        self.matrix_note = QLabel("")
        self.matrix_note.setStyleSheet("color: gray")
        self.matrix_note.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(QLabel("Scope:"))
        top.addWidget(self.scope_combo)
        top.addWidget(self.group_combo, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.export_button)
        pairs_box = QGroupBox("Pairs of annotators")
        QVBoxLayout(pairs_box).addWidget(self.pairs)
        classes_box = QGroupBox("Per class (specific agreement)")
        QVBoxLayout(classes_box).addWidget(self.classes)
        matrix_box = QGroupBox("Confusion matrix")
        mlay = QVBoxLayout(matrix_box)
        who = QHBoxLayout()
        who.addWidget(QLabel("rows:"))
        who.addWidget(self.a_combo, 1)
        who.addWidget(QLabel("columns:"))
        who.addWidget(self.b_combo, 1)
        mlay.addLayout(who)
        mlay.addWidget(self.matrix, 1)
        mlay.addWidget(self.matrix_note)
        grid = QGridLayout()
        grid.addWidget(pairs_box, 0, 0)
        grid.addWidget(classes_box, 1, 0)
        grid.addWidget(matrix_box, 0, 1, 2, 1)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 3)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.summary)
        lay.addLayout(grid, 1)

        self.scope_combo.currentIndexChanged.connect(lambda _i: self.refresh())
        self.group_combo.currentIndexChanged.connect(lambda _i: self._show_group())
        self.refresh_button.clicked.connect(self.refresh)
        self.export_button.clicked.connect(self._ask_export)
        self.a_combo.currentIndexChanged.connect(lambda _i: self._show_matrix())
        self.b_combo.currentIndexChanged.connect(lambda _i: self._show_matrix())
        self.resize(980, 600)

    # --- computing ---------------------------------------------------------------------
    def scope(self) -> str | None:
        return self.scope_combo.currentData()

    def set_scope(self, by: str | None) -> None:
        self.scope_combo.setCurrentIndex(self.scope_combo.findData(by))

    def refresh(self) -> None:
        """Compute the figures of the chosen scope in the background (newest request wins)."""
        store = self.window_.current_store()
        self._ticket += 1
        ticket = self._ticket
        if store is None:
            self._show([], "No project.")
            return
        path, by = Path(store.path), self.scope()

        def work(_state) -> list[Agreement]:
            from cellviewer.core.store import ProjectStore

            with ProjectStore.open(path, readonly=True) as ro:
                return project_agreement(ro, by)

        def done(results: list[Agreement]) -> None:
            if ticket == self._ticket:
                self._show(results)

        def failed(message: str) -> None:
            if ticket == self._ticket:
                self._show([], f"Cannot compute the agreement: {message}")

        self.summary.setText("Computing…")
        self.runner.start(work, done=done, failed=failed)

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if self.runner.is_idle():
                QCoreApplication.processEvents()
                return True
        return False

    # --- showing -----------------------------------------------------------------------
    def _show(self, results: list[Agreement], message: str = "") -> None:
        self.results = results
        self.group_combo.blockSignals(True)
        self.group_combo.clear()
        for r in results:
            self.group_combo.addItem(f"{r.group} ({r.n_cells:,} cells)", r.group)
        # per image / region: the first group after the project's totals
        self.group_combo.setCurrentIndex(1 if len(results) > 1 else 0)
        self.group_combo.setEnabled(len(results) > 1)
        self.group_combo.blockSignals(False)
        self.export_button.setEnabled(bool(results))
        self._show_group(message)
        self.computed.emit(results)

    def current(self) -> Agreement | None:
        i = self.group_combo.currentIndex()
        return self.results[i] if 0 <= i < len(self.results) else None

    def _show_group(self, message: str = "") -> None:
        r = self.current()
        self.pairs.setRowCount(0)
        self.classes.setRowCount(0)
        if r is None:
            self.summary.setText(message)
            self._set_annotators([])
            return
        if r.n_cells == 0:
            text = (f"{r.group}: no cell was labelled by two or more annotators (a label or "
                    "confirm action of their own). Merge the annotators' copies first.")
        else:
            text = (f"{r.group}: {r.n_cells:,} cells labelled by two or more of "
                    f"{', '.join(r.annotators)}; agreement {number(r.percent)}")
            if r.fleiss is not None:
                text += (f"; Fleiss' κ {number(r.fleiss)} over the {r.fleiss_cells:,} cells "
                         "labelled by all")
        self.summary.setText(text)
        for p in r.pairs:
            row = self.pairs.rowCount()
            self.pairs.insertRow(row)
            for col, (value, right) in enumerate(((p.a, False), (p.b, False),
                                                  (f"{p.n_cells:,}", True),
                                                  (number(p.percent), True),
                                                  (number(p.kappa), True))):
                self.pairs.setItem(row, col, _item(value, right))
        for name, (value, n) in r.per_class.items():
            row = self.classes.rowCount()
            self.classes.insertRow(row)
            for col, (text_, right) in enumerate(((name, False), (number(value), True),
                                                  (f"{n:,}", True))):
                self.classes.setItem(row, col, _item(text_, right))
        self.pairs.resizeColumnsToContents()
        self.classes.resizeColumnsToContents()
        self._set_annotators(r.annotators)

    def _set_annotators(self, names: list[str]) -> None:
        a, b = self.a_combo.currentText(), self.b_combo.currentText()
        for combo in (self.a_combo, self.b_combo):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.blockSignals(False)
        if a in names:
            self.a_combo.setCurrentIndex(names.index(a))
        if b in names and b != self.a_combo.currentText():
            self.b_combo.setCurrentIndex(names.index(b))
        elif len(names) > 1:
            self.b_combo.setCurrentIndex(1 if self.a_combo.currentIndex() != 1 else 0)
        self._show_matrix()

    def set_pair(self, a: str, b: str) -> None:
        """Show the confusion matrix of ``a`` (rows) against ``b`` (columns)."""
        self.a_combo.setCurrentText(a)
        self.b_combo.setCurrentText(b)

    def pair(self) -> tuple[PairAgreement, bool] | None:
        """The chosen pair's figures, and whether they are transposed (B chosen as rows)."""
        r = self.current()
        a, b = self.a_combo.currentText(), self.b_combo.currentText()
        if r is None or not a or not b or a == b:
            return None
        for p in r.pairs:
            if (p.a, p.b) == (a, b):
                return p, False
            if (p.a, p.b) == (b, a):
                return p, True
        return None

    def confusion(self) -> tuple[list[str], np.ndarray] | None:
        """The classes and counts shown (rows: the rows' annotator)."""
        found = self.pair()
        if found is None:
            return None
        p, flipped = found
        return p.classes, (p.confusion.T if flipped else p.confusion)

    def _show_matrix(self) -> None:
        shown = self.confusion()
        self.matrix.clear()
        if shown is None:
            self.matrix.setRowCount(0)
            self.matrix.setColumnCount(0)
            a, b = self.a_combo.currentText(), self.b_combo.currentText()
            self.matrix_note.setText("Choose two annotators." if not a or a == b else
                                     f"{a} and {b} labelled no cell in common.")
            return
        classes, m = shown
        self.matrix.setRowCount(len(classes))
        self.matrix.setColumnCount(len(classes))
        self.matrix.setVerticalHeaderLabels(classes)
        for j, short in enumerate(short_names(classes)):
            header = QTableWidgetItem(short)
            header.setToolTip(classes[j])
            self.matrix.setHorizontalHeaderItem(j, header)
        diagonal = np.eye(len(classes), dtype=bool)
        peaks = {True: int(m[diagonal].max()) if m.size else 0,
                 False: int(m[~diagonal].max()) if m.size > 1 else 0}
        for i in range(len(classes)):
            for j in range(len(classes)):
                n = int(m[i, j])
                item = _item(str(n) if n else "", True)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                colour = heat_colour(n, peaks[i == j], i == j)
                item.setBackground(QBrush(colour))
                if colour.lightness() < 128:
                    item.setForeground(QBrush(QColor("white")))
                item.setToolTip(f"{self.a_combo.currentText()}: {classes[i]}, "
                                f"{self.b_combo.currentText()}: {classes[j]}: {n:,} cells")
                self.matrix.setItem(i, j, item)
        self.matrix.resizeColumnsToContents()
        found = self.pair()
        assert found is not None
        p = found[0]
        self.matrix_note.setText(
            f"Rows: {self.a_combo.currentText()}'s class; columns: "
            f"{self.b_combo.currentText()}'s. {p.n_cells:,} cells, agreement "
            f"{number(p.percent)}, Cohen's κ {number(p.kappa)}. Blue: both said the same; "
            "red: they differ (each shaded by the largest count of its kind).")

    # --- export ------------------------------------------------------------------------
    def _ask_export(self) -> None:
        store = self.window_.current_store()
        start = folders.start_folder("export", str(store.path) if store is not None else None)
        name = f"{Path(store.path).stem if store is not None else 'project'}-agreement.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export agreement", str(start / name),
                                              "CSV (*.csv)")
        if path:
            folders.remember("export", path)
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> bool:
        """Write every figure of the scope as CSV rows (group, figure, annotators, class,
        value, cells); False (the window says why) when the file cannot be written."""
        rows = agreement_rows(self.results)
        try:
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, CSV_FIELDS)
                w.writeheader()
                w.writerows(rows)
        except OSError as exc:
            self.window_.report_error("Cannot export the agreement",
                                      f"{path}: cannot write ({exc.strerror or exc})")
            return False
        self.window_.show_status(f"Exported {len(rows):,} figures to {Path(path).name}", 8000)
        return True

