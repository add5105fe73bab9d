"""The review queue: walk the cells a filter picks, accept or correct the model's call.

A queue is built from a filter (label ≠ prediction, confidence below a threshold, a class, a
review status; the current image or the whole project) and sorted by confidence (least sure
first) or by blur sensitivity (the cells whose prediction moves most under the blur preview's
σ first; computed in the background). Then, with the keyboard:

- Down / Up (or N / P): next / previous cell; the slide is centred on each cell;
- Enter: accept the model's prediction as the label (label source ``model-accepted``);
- a class key (1–9, Shift+1–9: the class panel's keys): set that class (label source
  ``corrected``);
- Ctrl+Z: undo the last action (through the store, like everywhere else).

Each action is written to the store at once (history with the user's name and the label source)
and advances the cell's review status one step along annotated → checked → reviewed (the
study's double-check, then the pathologist's review); then the queue moves to the next cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.cells import editing
from cellviewer.core.cells.editing import EditError
from cellviewer.core.cells.order import BLUR_SENSITIVE_FIRST, ORDERS
from cellviewer.core.review import (
    QUEUE_ORDERS,
    REVIEW_LADDER,
    ReviewFilter,
    build_queue,
    order_by_blur_sensitivity,
    predicted,
)
from cellviewer.ui.common.queue_keys import (
    CONFIRM,
    NEXT,
    PREVIOUS,
    UNDO,
    class_with_key,
    handle_queue_key,
)
from cellviewer.ui.common.workers import BackgroundRunner
from cellviewer.ui.host import Host


@dataclass
class _Row:
    image: str
    label_id: int
    label_source: str
    status: str
    pred_id: int  # project class id, -1 none
    confidence: float  # nan when no prediction


FETCH_BLOCK = 200  # queue rows read from the store at once
ROWS_AT_ONCE = 1000  # queue rows the view is told of at a time


class ReviewQueueModel(QAbstractTableModel):
    """The queue as a table: cell rows fetched lazily from the store and cached."""

    HEADERS = ("#", "image", "label", "prediction", "conf.", "status", "")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store: Any = None
        self.choice: Any = None  # cellviewer.core.predict.model_info.ModelChoice
        self.ids: list[str] = []
        self._rows: dict[str, _Row] = {}
        self._done: dict[str, str] = {}  # cell id -> the action taken ("✓ accepted", ...)
        self._classes: dict[int, tuple[str, str]] = {}  # id -> (name, colour)
        self._images: dict[int, str] = {}
        self._row_of: dict[str, int] | None = None
        self._shown = 0  # rows the view knows of (see set_ids)

    # --- content ----------------------------------------------------------------------------
    def set_context(self, store: Any, choice: Any) -> None:
        self.store, self.choice = store, choice
        self.refresh_classes()

    def refresh_classes(self) -> None:
        self._classes = {}
        self._images = {}
        if self.store is not None:
            self._classes = {int(c.id): (c.name, c.color) for c in self.store.classes()}
            self._images = self.store.image_names()

    def set_ids(self, ids: Sequence[str], row_of: dict[str, int] | None = None) -> None:
        """Show these cells (``row_of``: their id → row map, when a worker built it). The view
        is told of the first ``ROWS_AT_ONCE`` rows, and of more as it scrolls (Qt's
        fetchMore), so a queue of 100,000 cells costs what one of 1,000 does."""
        self.beginResetModel()
        self.ids = list(ids)
        self._row_of = row_of
        self._shown = min(len(self.ids), ROWS_AT_ONCE)
        self._rows.clear()
        self._done.clear()
        self.endResetModel()

    def forget(self, ids: Sequence[str] | None = None) -> None:
        """Drop cached rows (all, or of ``ids``) so they are read again from the store."""
        if ids is None:
            self._rows.clear()
        else:
            for i in ids:
                self._rows.pop(i, None)
        if self._shown:
            self.dataChanged.emit(self.index(0, 0), self.index(self._shown - 1,
                                                               len(self.HEADERS) - 1))

    def mark_done(self, cell_id: str, text: str) -> None:
        self._done[cell_id] = text
        self.forget([cell_id])

    def clear_marks(self, ids: Sequence[str]) -> None:
        """Forget the decisions shown for ``ids`` (they were undone)."""
        for i in ids:
            self._done.pop(i, None)

    def row_of(self, cell_id: str) -> int:
        if self._row_of is None:
            self._row_of = {cid: i for i, cid in enumerate(self.ids)}
        return self._row_of.get(cell_id, -1)

    def class_name(self, class_id: int) -> str:
        return self._classes.get(int(class_id), ("", ""))[0] if class_id >= 0 else ""

    def record(self, cell_id: str) -> _Row:
        row = self._rows.get(cell_id)
        if row is None:
            # the rows around it too, in two queries: a view asks row by row as it paints
            at = self.row_of(cell_id)
            block = self.ids[max(0, at - FETCH_BLOCK // 4):at + FETCH_BLOCK] if at >= 0 \
                else [cell_id]
            block = [i for i in block if i not in self._rows] or [cell_id]
            row = self._fetch(block)[cell_id]
        return row

    def _fetch(self, ids: list[str]) -> dict[str, _Row]:
        model_id = self.choice.model_id if self.choice is not None else None
        preds = predicted(self.store, model_id, ids)
        table = self.store.cell_table(cell_ids=self.store.existing_cell_ids(ids))
        fields = {cid: (img, cls, src, st) for cid, img, cls, src, st in zip(
            table["ids"], table["image_id"].tolist(), table["class_id"].tolist(),
            table["label_source"], table["review_status"], strict=True)}
        out = {}
        for cid, (pred, conf) in zip(ids, preds, strict=True):
            if cid not in fields:  # deleted since the queue was built
                out[cid] = _Row("(deleted)", -1, "", "deleted", -1, float("nan"))
                continue
            img, cls, src, st = fields[cid]
            out[cid] = _Row(self._images.get(int(img), str(img)), int(cls), src or "",
                            st or "", pred, conf)
        self._rows.update(out)
        return out

    # --- Qt model ---------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # Qt naming
        return 0 if parent.isValid() else self._shown

    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # Qt naming
        return not parent.isValid() and self._shown < len(self.ids)

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # Qt naming
        if parent.isValid() or self._shown >= len(self.ids):
            return
        more = min(len(self.ids), self._shown + ROWS_AT_ONCE)
        self.beginInsertRows(QModelIndex(), self._shown, more - 1)
        self._shown = more
        self.endInsertRows()

    def row_map(self) -> dict[str, int] | None:
        """The id → row map when one was built (by the worker that built the queue)."""
        return self._row_of

    def reveal(self, row: int) -> None:
        """Make sure the view knows ``row`` (going to a row beyond those shown)."""
        while row >= self._shown and self.canFetchMore():
            self.fetchMore()

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.store is None:
            return None
        cid = self.ids[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.UserRole:
            return cid
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole,
                        Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole):
            return None
        r = self.record(cid)
        if role == Qt.ItemDataRole.DecorationRole:
            if col == 2 and r.label_id >= 0:
                return QColor(self._classes.get(r.label_id, ("", "#888"))[1])
            if col == 3 and r.pred_id >= 0:
                return QColor(self._classes.get(r.pred_id, ("", "#888"))[1])
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == 3 and r.pred_id >= 0 and r.label_id >= 0 and r.pred_id != r.label_id:
                return QColor("#d62728")
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"cell {cid}\nlabel source: {r.label_source or '–'}"
        if col == 0:
            return index.row() + 1
        if col == 1:
            return r.image
        if col == 2:
            return self.class_name(r.label_id) or "–"
        if col == 3:
            return self.class_name(r.pred_id) or "–"
        if col == 4:
            return "" if not np.isfinite(r.confidence) else f"{r.confidence:.2f}"
        if col == 5:
            return r.status
        return self._done.get(cid, "")


class ReviewPanel(QWidget):
    """The review queue panel. ``host`` is the main window (a :class:`~cellviewer.ui.host.
    Host`: its project session, ``centre_on_cell``, ``current_image_id``, ``undo``);
    ``session`` the ``ModelSession``. Decisions are the core's (:func:`cellviewer.core.
    editing.review`); the queue follows every change of the project (an undo from anywhere).

    Signals: ``currentCellChanged(str)`` when the queue moves to a cell; ``edited(list)``
    after an action of the queue changed cells.
    """

    currentCellChanged = Signal(str)
    edited = Signal(list)
    built = Signal(object)  # the queue's cell ids (a list), once a build has finished

    def __init__(self, session: Any, host: Host, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.host = host
        self.runner = BackgroundRunner(1, self)  # queue queries, blur-sensitivity ordering
        self._build_ticket = 0
        self._queue_images: list[int] = []  # the images of the queue's cells (blur order)
        self.model = ReviewQueueModel(self)
        self.filter = ReviewFilter()
        self._sensitivity: dict[str, float] = {}
        self.blur_sigma = 0.8
        self.blur_mode = "post"
        self._sens_job: Any = None

        self.disagree_box = QCheckBox("label ≠ prediction")
        self.confidence_box = QCheckBox("confidence below")
        self.confidence_spin = QDoubleSpinBox()
        self.confidence_spin.setRange(0.0, 1.0)
        self.confidence_spin.setSingleStep(0.05)
        self.confidence_spin.setValue(0.6)
        self.class_combo = QComboBox()
        self.status_combo = QComboBox()
        self.status_combo.addItem("any status", None)
        for s in REVIEW_LADDER:
            self.status_combo.addItem(s, s)
        self.scope_combo = QComboBox()
        self.scope_combo.addItem("current image", "image")
        self.scope_combo.addItem("whole project", "project")
        self.sort_combo = QComboBox()
        for order in QUEUE_ORDERS:
            self.sort_combo.addItem(ORDERS[order], order)
        self.build_button = QPushButton("Build queue")
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        # Interactive widths, fitted to the first rows after each build (_fit_columns).
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.installEventFilter(self)
        self.status = QLabel("Build a queue to start reviewing.")
        self.status.setWordWrap(True)
        keys = QLabel("↓/↑ or N/P: next/previous · Enter: accept prediction · 1–9, "
                      "Shift+1–9: set class · Ctrl+Z: undo")
        keys.setWordWrap(True)
        keys.setStyleSheet("color: gray")

        grid = QGridLayout()
        grid.addWidget(self.disagree_box, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.confidence_box)
        row.addWidget(self.confidence_spin)
        grid.addLayout(row, 0, 1)
        grid.addWidget(QLabel("class"), 1, 0)
        grid.addWidget(self.class_combo, 1, 1)
        grid.addWidget(QLabel("status"), 2, 0)
        grid.addWidget(self.status_combo, 2, 1)
        grid.addWidget(QLabel("in"), 3, 0)
        grid.addWidget(self.scope_combo, 3, 1)
        grid.addWidget(QLabel("sort"), 4, 0)
        grid.addWidget(self.sort_combo, 4, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addWidget(self.build_button)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.status)
        lay.addWidget(keys)

        self.build_button.clicked.connect(self.build_from_controls)
        self.table.selectionModel().currentRowChanged.connect(self._on_row_changed)
        session.changed.connect(self._on_session_changed)
        host.session.events.store_changed.connect(self._on_store_changed)
        self._on_session_changed()

    # --- context ----------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.session.store

    def _on_store_changed(self, event: Any) -> None:
        """Any change of the project (an undo from the window, another panel's edit): the
        queue's rows are read again; an undone or redone decision loses its mark."""
        if not self.model.ids or not event.kinds & {"cells", "classes", "predictions"}:
            return
        if event.action in ("undo", "redo") and event.cell_rows is not None \
                and self.store is not None:
            touched = self.store.columns_of_rows(event.cell_rows).ids.tolist()
            self.model.clear_marks(touched)
        if "classes" in event.kinds:
            self.model.refresh_classes()
        self.model.forget()
        self._describe_current()

    def _on_session_changed(self) -> None:
        self.model.set_context(self.store, self.session.choice)
        self.refresh_classes()
        self.model.set_ids([])
        self.status.setText("Build a queue to start reviewing." if self.session.choice
                            else "Choose a model in the Model panel, then build a queue.")

    def refresh_classes(self) -> None:
        self.class_combo.clear()
        self.class_combo.addItem("any class", None)
        if self.store is not None:
            for c in self.store.classes():
                self.class_combo.addItem(c.name, int(c.id))
        self.model.refresh_classes()

    # --- building ---------------------------------------------------------------------------
    def build_from_controls(self) -> None:
        image_id = None
        if self.scope_combo.currentData() == "image" and self.host is not None:
            image_id = self.host.current_image_id()
        self.build(ReviewFilter(
            disagree=self.disagree_box.isChecked(),
            max_confidence=(self.confidence_spin.value() if self.confidence_box.isChecked()
                            else None),
            class_id=self.class_combo.currentData(),
            review_status=self.status_combo.currentData(),
            image_id=image_id,
            order=str(self.sort_combo.currentData()),
        ))

    def build(self, flt: ReviewFilter) -> None:
        """Build the queue from ``flt`` in the background (one indexed query, through a
        read-only connection of the worker's own), then go to its first cell; ``built(ids)``
        follows (an empty list when the filter cannot be used: the status says why)."""
        self.filter = flt
        self.model.set_context(self.store, self.session.choice)
        model_id = self.session.choice.model_id if self.session.choice is not None else None
        self._build_ticket += 1
        ticket, store = self._build_ticket, self.store
        if store is None or (flt.needs_model() and model_id is None):
            self.model.set_ids([])
            self.status.setText("Choose a model in the Model panel first: this queue needs "
                                "its predictions." if store is not None else "No project.")
            self.built.emit([])
            return
        path = store.path

        def query() -> tuple[list[str], dict[str, int], list[int]]:
            from cellviewer.core.store import ProjectStore

            with ProjectStore.open(path, readonly=True) as ro:
                ids = build_queue(ro, model_id, flt)
                images = ro.images_of_cells(ids) if flt.order == BLUR_SENSITIVE_FIRST else []
            return ids, {cid: i for i, cid in enumerate(ids)}, images

        def done(result: tuple[list[str], dict[str, int], list[int]]) -> None:
            if ticket == self._build_ticket and store is self.store:
                ids, rows, self._queue_images = result
                self._show_queue(flt, ids, rows)

        def failed(message: str) -> None:
            if ticket == self._build_ticket:
                self.model.set_ids([])
                self.status.setText(f"Cannot build the queue: {message}")
                self.built.emit([])

        self.status.setText("Building the queue…")
        self.runner.submit(query, done, failed)

    def _show_queue(self, flt: ReviewFilter, ids: list[str],
                    rows: dict[str, int] | None = None) -> None:
        self.model.set_ids(ids, rows)
        self._fit_columns()
        self.status.setText(f"{len(ids):,} cells in the queue.")
        if ids:
            self.go_to(0)
        self.built.emit(list(ids))
        if flt.order == BLUR_SENSITIVE_FIRST and ids:
            self.sort_by_blur()

    def _fit_columns(self, rows: int = 40) -> None:
        """Column widths from the first rows' texts (Qt's own fitting reads a thousand rows,
        each a store query here)."""
        metrics = self.table.fontMetrics()
        model = self.model
        for col, header in enumerate(model.HEADERS):
            texts = [header] + [str(model.index(r, col).data() or "")
                                for r in range(min(rows, model.rowCount()))]
            width = max(metrics.horizontalAdvance(t) for t in texts) + 24  # + icon, margins
            self.table.setColumnWidth(col, width)

    def sort_by_blur(self) -> None:
        """Predict the queue's cells under the blur preview's σ in the background, then sort
        by how far the blurred prediction moves from the clean one (most first)."""
        choice = self.session.choice
        if choice is None or self.store is None or not self.model.ids:
            return
        from cellviewer.ui.predict.worker import PredictionJob

        ids = list(self.model.ids)
        images = self._queue_images or self.store.images_of_cells(ids)
        job = PredictionJob(self.store.path, choice.path, None, images, cell_ids=ids,
                            device=self.session.device, store_results=False,
                            predict_kwargs={"blur_sigma": self.blur_sigma,
                                            "blur_mode": self.blur_mode},
                            keep_source_crops=self.blur_mode == "pre", parent=self)
        # the blurred probabilities by queue row, filled chunk by chunk (NaN: not yet)
        blurred = np.full((len(ids), len(choice.classes)), np.nan, dtype=np.float32)
        row_of = {cid: i for i, cid in enumerate(ids)} if self.model.row_map() is None \
            else self.model.row_map()

        def collect(progress: Any) -> None:
            chunk = progress.chunk
            rows = np.fromiter((row_of.get(c, -1) for c in chunk.cell_ids), dtype=np.int64,
                               count=len(chunk.cell_ids))
            ok = rows >= 0
            blurred[rows[ok]] = np.asarray(chunk.probs)[ok]
            self.status.setText(f"Blur sensitivity: {progress.done:,} of {progress.total:,} "
                                "cells predicted…")

        def finish(_summary: Any) -> None:
            self._apply_sensitivity(ids, blurred)

        job.progress.connect(collect)
        job.finished.connect(finish)
        job.failed.connect(lambda msg: self.status.setText(f"Blur sensitivity failed: {msg}"))
        self._sens_job = job
        self.status.setText(f"Blur sensitivity: predicting {len(ids):,} cells at σ "
                            f"{self.blur_sigma:g} ({self.blur_mode}-resize)…")
        job.start()

    def _apply_sensitivity(self, ids: list[str], blurred: np.ndarray) -> None:
        """Order the queue by blur sensitivity in the background (the stored clean
        probabilities are read through a connection of the worker's own)."""
        choice, store = self.session.choice, self.store
        if choice is None or choice.model_id is None or store is None:
            return
        path, model_id = store.path, choice.model_id

        def order():
            from cellviewer.core.store import ProjectStore

            with ProjectStore.open(path, readonly=True) as ro:
                clean = np.asarray(ro.predictions(model_id, ids).probs, dtype=np.float32)
            result = order_by_blur_sensitivity(ids, clean, blurred)
            rows = None if result is None else {cid: i for i, cid in enumerate(result.ids)}
            return result, rows

        def done(found: Any) -> None:
            result, rows = found
            if result is None:
                self.status.setText("Blur sensitivity needs stored predictions: predict first.")
                return
            self._sensitivity = result.sensitivity
            self.model.set_ids(result.ids, rows)
            self.status.setText(f"{len(result.ids):,} cells, most blur-sensitive first (σ "
                                f"{self.blur_sigma:g}, {self.blur_mode}-resize): "
                                f"{result.flips:,} calls flip.")
            self.go_to(0)

        self.status.setText(f"Blur sensitivity: ordering {len(ids):,} cells…")
        self.runner.submit(order, done,
                           lambda msg: self.status.setText(f"Blur sensitivity failed: {msg}"))

    def sensitivity(self, cell_id: str) -> float | None:
        return self._sensitivity.get(cell_id)

    # --- walking ----------------------------------------------------------------------------
    def current_id(self) -> str | None:
        row = self.table.currentIndex().row()
        return self.model.ids[row] if 0 <= row < len(self.model.ids) else None

    def go_to(self, row: int) -> None:
        if not self.model.ids:
            return
        row = max(0, min(row, len(self.model.ids) - 1))
        self.model.reveal(row)
        self.table.setCurrentIndex(self.model.index(row, 0))
        self.table.scrollTo(self.model.index(row, 0))

    def next(self) -> None:
        self.go_to(self.table.currentIndex().row() + 1)

    def previous(self) -> None:
        self.go_to(self.table.currentIndex().row() - 1)

    def _on_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        cid = self.model.ids[current.row()]
        self.host.centre_on_cell(cid)
        self._describe_current()
        self.currentCellChanged.emit(cid)

    def _describe_current(self) -> None:
        current = self.table.currentIndex()
        if not current.isValid() or current.row() >= len(self.model.ids):
            return
        cid = self.model.ids[current.row()]
        r = self.model.record(cid)
        sens = self._sensitivity.get(cid)
        extra = f", blur sensitivity {sens:.2f}" if sens is not None else ""
        conf = f"{r.confidence:.2f}" if np.isfinite(r.confidence) else "–"
        self.status.setText(
            f"Cell {current.row() + 1} of {len(self.model.ids)}: label "
            f"{self.model.class_name(r.label_id) or '–'} ({r.label_source or '–'}), prediction "
            f"{self.model.class_name(r.pred_id) or '–'} ({conf}{extra}), {r.status}.")

    # --- acting -----------------------------------------------------------------------------
    def accept(self) -> bool:
        """Accept the model's prediction for the current cell; go to the next."""
        cid = self.current_id()
        if cid is None:
            return False
        r = self.model.record(cid)
        if r.pred_id < 0:
            self.status.setText("No prediction of a project class for this cell: predict it "
                                "first, or set a class with its key.")
            return False
        return self._decide(cid, r.pred_id, True, "✓ accepted")

    def set_class(self, class_id: int) -> bool:
        """Set the current cell's class by hand (a correction); go to the next."""
        cid = self.current_id()
        if cid is None:
            return False
        return self._decide(cid, int(class_id), False,
                            f"✎ {self.model.class_name(int(class_id))}")

    def _decide(self, cid: str, class_id: int, accepted: bool, done_text: str) -> bool:
        """One review decision (the user is asked for first if nobody said yet)."""
        try:
            result = editing.review(self.host.session, cid, class_id, accepted=accepted)
        except EditError as exc:
            self.status.setText(str(exc))
            return False
        self.model.mark_done(cid, done_text)
        self.host.show_status(result.message)
        self.edited.emit([cid])
        self.next()
        return True

    def undo(self) -> bool:
        """Undo the last action of the project, through the window as every undo (the queue
        follows it like any other change)."""
        return self.host.undo()

    def class_for_key(self, key: str) -> int | None:
        """The class whose key is ``key`` ("1"…"9", "Shift+1"…"Shift+9"), as the class panel
        shows it."""
        found = class_with_key(list(self.store.classes()), key) if self.store is not None \
            else None
        return int(found.id) if found is not None else None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.table and event.type() == QEvent.Type.KeyPress:
            return self._handle_key(event)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event) -> None:
        if not self._handle_key(event):
            super().keyPressEvent(event)

    def _handle_key(self, event) -> bool:
        return handle_queue_key(event, {UNDO: self.undo, CONFIRM: self.accept, NEXT: self.next,
                                        PREVIOUS: self.previous}, self._choose_class)

    def _choose_class(self, key: str) -> None:
        class_id = self.class_for_key(key)
        if class_id is None:
            self.status.setText(f"No class has the key {key}")
        else:
            self.set_class(class_id)
