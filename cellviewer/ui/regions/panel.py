"""The Regions panel: the current image's regions with their counts, and what to do with one.

The upper table lists the regions (name, kind, status, accepted cells, proposals waiting,
density per mm²: "—" where the image has no pixel size, the reason in its tooltip and under
the table); the lower one the chosen region's classes with their counts and proportions (the
shares of its labelled, accepted cells). The buttons ask the tool (``install.py``) to act; the
panel itself never edits the project.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.regions.editing import SETTABLE_STATUSES
from cellviewer.core.regions.summary import RegionSummary
from cellviewer.core.store import REGION_KINDS

NO_DENSITY = "—"
REGION_COLUMNS = ("Name", "Kind", "Status", "Cells", "Prop.", "/mm²")
REGION_TIPS = ("", "", "", "accepted cells inside", "proposals inside, waiting to be accepted "
               "or deleted", "accepted cells per mm² (— where the image has no pixel size)")
CLASS_COLUMNS = ("Class", "Cells", "Share")


def density_text(summary: RegionSummary) -> str:
    if summary.density_per_mm2 is None:
        return NO_DENSITY
    return f"{summary.density_per_mm2:,.0f}"


def _item(text: str, tip: str = "", right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
    if tip:
        item.setToolTip(tip)
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _table(columns: tuple[str, ...], min_height: int) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(22)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    table.setMinimumHeight(min_height)
    return table


class RegionsPanel(QWidget):
    regionChosen = Signal(object)  # uuid, or None
    statusRequested = Signal(str)  # annotated, checked, reviewed
    kindRequested = Signal(str)
    renameRequested = Signal()
    deleteRequested = Signal()
    acceptRegionRequested = Signal()
    acceptSelectedRequested = Signal()
    zoomRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summaries: list[RegionSummary] = []
        self.class_colours: dict[int, str] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.hint = QLabel("Draw a region with the region tool (R): drag a rectangle, or click "
                           "corners and double-click to close a polygon.")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.table = _table(REGION_COLUMNS, 96)
        self.table.setObjectName("regions_table")
        for col, tip in enumerate(REGION_TIPS):
            if tip:
                self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.cellDoubleClicked.connect(lambda _r, _c: self.zoomRequested.emit())
        layout.addWidget(self.table, 3)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setObjectName("density_note")
        layout.addWidget(self.note)
        self.classes = _table(CLASS_COLUMNS, 80)
        self.classes.setObjectName("region_classes_table")
        layout.addWidget(self.classes, 2)
        grid = QGridLayout()
        grid.setSpacing(4)
        self.status_buttons: dict[str, QPushButton] = {}
        for k, status in enumerate(SETTABLE_STATUSES):
            button = QPushButton(f"Mark {status}")
            button.setToolTip(f"The region becomes {status}; every cell inside below it is "
                              f"raised to {status} (one undoable step)")
            button.clicked.connect(lambda _c=False, s=status: self.statusRequested.emit(s))
            grid.addWidget(button, 0, k)
            self.status_buttons[status] = button
        self.accept_region_button = QPushButton("Accept in region")
        self.accept_region_button.setToolTip("Accept every proposal inside the region")
        self.accept_region_button.clicked.connect(self.acceptRegionRequested)
        self.accept_selected_button = QPushButton("Accept selected")
        self.accept_selected_button.setToolTip(
            "Accept the selected proposals (Ctrl+Shift+A); Delete removes them")
        self.accept_selected_button.clicked.connect(self.acceptSelectedRequested)
        self.zoom_button = QPushButton("Zoom to")
        self.zoom_button.clicked.connect(self.zoomRequested)
        grid.addWidget(self.accept_region_button, 1, 0)
        grid.addWidget(self.accept_selected_button, 1, 1)
        grid.addWidget(self.zoom_button, 1, 2)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self.renameRequested)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the region (its cells stay)")
        self.delete_button.clicked.connect(self.deleteRequested)
        self.kind_combo = QComboBox()
        self.kind_combo.setObjectName("region_kind")
        self.kind_combo.setToolTip("The kind of the chosen region, and of new regions")
        self.kind_combo.addItems(list(REGION_KINDS))
        self.kind_combo.setCurrentText("annotation area")
        self.kind_combo.activated.connect(
            lambda _i: self.kindRequested.emit(self.kind_combo.currentText()))
        grid.addWidget(self.rename_button, 2, 0)
        grid.addWidget(self.delete_button, 2, 1)
        grid.addWidget(self.kind_combo, 2, 2)
        layout.addLayout(grid)
        self._update_buttons()

    # --- what is shown -------------------------------------------------------------------
    def set_summaries(self, summaries: list[RegionSummary], keep: str | None = None) -> None:
        """Show these regions (``keep``: the region to have chosen, else the one chosen)."""
        chosen = keep if keep is not None else self.current_uuid()
        self.summaries = list(summaries)
        self.table.blockSignals(True)
        self.table.setRowCount(len(summaries))
        for row, s in enumerate(summaries):
            r = s.region
            tip = s.density_note or f"{s.n_cells:,} cells in {s.area_mm2 or 0:.4f} mm²"
            values = [_item(r.name), _item(r.kind), _item(r.status),
                      _item(f"{s.n_cells:,}", right=True),
                      _item(f"{s.n_proposed:,}", right=True),
                      _item(density_text(s), tip, right=True)]
            for col, item in enumerate(values):
                self.table.setItem(row, col, item)
        row = next((i for i, s in enumerate(summaries) if s.region.uuid == chosen), -1)
        if row < 0 and summaries:
            row = 0
        if row >= 0:
            self.table.selectRow(row)
        self.table.blockSignals(False)
        self.hint.setVisible(not summaries)
        self._show_current()
        if self.current_uuid() != chosen:
            self.regionChosen.emit(self.current_uuid())

    def current_uuid(self) -> str | None:
        s = self.current()
        return s.region.uuid if s is not None else None

    def current(self) -> RegionSummary | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.summaries):
            return None
        return self.summaries[rows[0].row()]

    def choose(self, uuid: str | None) -> None:
        row = next((i for i, s in enumerate(self.summaries) if s.region.uuid == uuid), -1)
        if row >= 0:
            self.table.selectRow(row)
        else:
            self.table.clearSelection()

    def _on_selection(self) -> None:
        self._show_current()
        self.regionChosen.emit(self.current_uuid())

    def _show_current(self) -> None:
        s = self.current()
        self.classes.setRowCount(0)
        if s is None:
            self.note.setText("")
            self._update_buttons()
            return
        self.kind_combo.setCurrentText(s.region.kind)
        rows = sorted(s.counts.items(), key=lambda kv: -kv[1])
        extra = [("(unlabelled)", s.n_unlabelled, None)] if s.n_unlabelled else []
        self.classes.setRowCount(len(rows) + len(extra))
        for row, (cid, n) in enumerate(rows):
            name = _item(s.class_names.get(cid, str(cid)))
            colour = self.class_colours.get(cid)
            if colour:
                name.setData(Qt.ItemDataRole.DecorationRole, QColor(colour))
            self.classes.setItem(row, 0, name)
            self.classes.setItem(row, 1, _item(f"{n:,}", right=True))
            self.classes.setItem(row, 2, _item(f"{100 * s.proportions[cid]:.1f} %",
                                               right=True))
        for k, (label, n, _) in enumerate(extra):
            self.classes.setItem(len(rows) + k, 0, _item(label))
            self.classes.setItem(len(rows) + k, 1, _item(f"{n:,}", right=True))
            self.classes.setItem(len(rows) + k, 2, _item("", "not in the shares"))
        area = (f"{s.area_mm2:.4f} mm²" if s.area_mm2 is not None
                else f"{s.area_px:,.0f} px²")
        parts = [f"{s.region.name}: {area}"]
        if s.density_per_mm2 is None:
            parts.append(f"density {NO_DENSITY}: {s.density_note}")
        if s.n_proposed:
            parts.append(f"{s.n_proposed:,} proposals to accept or delete")
        self.note.setText("; ".join(parts))
        self._update_buttons()

    def _update_buttons(self) -> None:
        s = self.current()
        chosen = s is not None
        for button in (self.rename_button, self.delete_button, self.zoom_button,
                       *self.status_buttons.values()):
            button.setEnabled(chosen)
        self.accept_region_button.setEnabled(chosen and s is not None and s.n_proposed > 0)
