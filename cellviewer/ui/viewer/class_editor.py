"""The class editor: add, rename, recolour, reorder, set keys and merge the project's classes, or
add a default class set from ``resources/classes``.

Every change goes straight to the project store (so it is undoable and in the history) and the
dialog emits ``classesChanged``. Names and keys are edited in place in the table; the colour
opens a non-blocking colour dialog; nothing here waits on a modal dialog, so tests drive the
methods and the table directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.paths import class_sets_dir
from cellviewer.ui.common.dialogs import show_error
from cellviewer.ui.viewer.class_panel import swatch

# Distinct colours for new classes (Sasha Trubetskoy's list), used in order of absence.
NEW_COLOURS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
               "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8",
               "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075", "#a9a9a9"]
COL_COLOUR, COL_NAME, COL_KEY = 0, 1, 2


def class_set_files() -> list[str]:
    return sorted(p.name for p in class_sets_dir().glob("*.json"))


def read_class_set(name: str) -> dict:
    with open(class_sets_dir() / name) as fh:
        return json.load(fh)


class ClassEditorDialog(QDialog):
    classesChanged = Signal()

    def __init__(self, store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Classes")
        self.setObjectName("class_editor")
        self.store = store
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Colour", "Name", "Key"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.setColumnWidth(COL_COLOUR, 60)
        self.table.setColumnWidth(COL_NAME, 200)
        self.table.setColumnWidth(COL_KEY, 50)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.cellDoubleClicked.connect(self._on_double_click)

        add = QPushButton("Add", self)
        up = QPushButton("Up", self)
        down = QPushButton("Down", self)
        add.clicked.connect(lambda: self.add_class())
        up.clicked.connect(lambda: self._move_selected(-1))
        down.clicked.connect(lambda: self._move_selected(1))
        self.merge_target = QComboBox(self)
        merge = QPushButton("Merge selected into:", self)
        merge.clicked.connect(self._merge_selected)
        self.sets = QComboBox(self)
        for name in class_set_files():
            self.sets.addItem(read_class_set(name).get("name", name), name)
        load = QPushButton("Add class set:", self)
        load.clicked.connect(lambda: self.load_class_set(self.sets.currentData()))

        row1 = QHBoxLayout()
        for w in (add, up, down):
            row1.addWidget(w)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        row2.addWidget(merge)
        row2.addWidget(self.merge_target, 1)
        row3 = QHBoxLayout()
        row3.addWidget(load)
        row3.addWidget(self.sets, 1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        close.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Double-click a colour to change it; edit names and keys "
                                "(1-9) in place.", self))
        layout.addWidget(self.table, 1)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(row3)
        layout.addWidget(close)
        self.resize(420, 460)
        self._filling = False
        self.refresh()

    # --- view ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        self._filling = True
        classes = self.store.classes()
        selected = self.selected_class_id()
        self.table.setRowCount(len(classes))
        for row, c in enumerate(classes):
            colour = QTableWidgetItem()
            colour.setIcon(swatch(c.color, 18))
            colour.setText(c.color)
            colour.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            colour.setData(Qt.ItemDataRole.UserRole, c.id)
            self.table.setItem(row, COL_COLOUR, colour)
            self.table.setItem(row, COL_NAME, QTableWidgetItem(c.name))
            self.table.setItem(row, COL_KEY, QTableWidgetItem(c.key))
            if c.id == selected:
                self.table.selectRow(row)
        self.merge_target.clear()
        for c in classes:
            self.merge_target.addItem(swatch(c.color), c.name, c.id)
        self._filling = False

    def class_id_at(self, row: int) -> int:
        return int(self.table.item(row, COL_COLOUR).data(Qt.ItemDataRole.UserRole))

    def row_of(self, class_id: int) -> int:
        for row in range(self.table.rowCount()):
            if self.class_id_at(row) == class_id:
                return row
        return -1

    def selected_class_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows() if self.table.rowCount() else []
        return self.class_id_at(rows[0].row()) if rows else None

    # --- actions (also the API tests drive) ---------------------------------------------------
    def _apply(self, what: str, fn: Callable[[], object]):
        try:
            result = fn()
        except Exception as exc:  # the store refuses (duplicate name, key in use, ...): say why
            show_error(self, "Classes", f"Cannot {what}.", str(exc))
            self.refresh()
            return None
        self.refresh()
        self.classesChanged.emit()
        return result

    def add_class(self, name: str | None = None, color: str | None = None,
                  key: str | None = None) -> int | None:
        existing = self.store.classes()
        names = {c.name for c in existing}
        if name is None:
            n = len(existing) + 1
            while f"class {n}" in names:
                n += 1
            name = f"class {n}"
        if color is None:
            used = {c.color.lower() for c in existing}
            color = next((c for c in NEW_COLOURS if c not in used), NEW_COLOURS[0])
        cid = self._apply(f"add the class {name!r}",
                          lambda: self.store.add_class(name, color=color, key=key or None))
        if cid is not None:
            self.table.selectRow(self.row_of(cid))
        return cid

    def rename(self, class_id: int, name: str) -> None:
        self._apply(f"rename the class to {name!r}",
                    lambda: self.store.rename_class(class_id, name.strip()))

    def set_colour(self, class_id: int, colour: str) -> None:
        self._apply("change the colour", lambda: self.store.set_class_color(class_id, colour))

    def set_key(self, class_id: int, key: str) -> None:
        key = key.strip()
        if key and (len(key) != 1 or key not in "123456789"):
            show_error(self, "Classes", f"The key {key!r} is not one of 1-9.",
                       "A class's key is a single digit 1-9, or empty for none.")
            self.refresh()
            return
        self._apply(f"set the key {key!r}", lambda: self.store.set_class_key(class_id, key))

    def move(self, class_id: int, delta: int) -> None:
        ids = [c.id for c in self.store.classes()]
        i = ids.index(class_id)
        j = min(len(ids) - 1, max(0, i + delta))
        if i == j:
            return
        ids.insert(j, ids.pop(i))
        self._apply("reorder the classes", lambda: self.store.reorder_classes(ids))

    def merge(self, source_id: int, target_id: int) -> None:
        if source_id == target_id:
            return
        self._apply("merge the classes", lambda: self.store.merge_classes(source_id, target_id))

    def load_class_set(self, filename: str) -> int:
        """Add the classes of a default set that the project lacks; returns how many."""
        data = read_class_set(filename)
        have = {c.name for c in self.store.classes()}
        used_keys = {c.key for c in self.store.classes() if c.key}
        added = 0

        def add_all() -> None:
            nonlocal added
            for c in data["classes"]:
                if c["name"] in have:
                    continue
                key = c.get("key") or None
                self.store.add_class(c["name"], color=c.get("color"),
                                     key=None if key in used_keys else key)
                added += 1

        self._apply(f"add the class set {filename}", add_all)
        return added

    # --- table callbacks -----------------------------------------------------------------------
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        cid = self.class_id_at(item.row())
        if item.column() == COL_NAME:
            self.rename(cid, item.text())
        elif item.column() == COL_KEY:
            self.set_key(cid, item.text())

    def _on_double_click(self, row: int, column: int) -> None:
        if column != COL_COLOUR:
            return
        cid = self.class_id_at(row)
        dialog = QColorDialog(QColor(self.table.item(row, COL_COLOUR).text()), self)
        dialog.colorSelected.connect(lambda c: self.set_colour(cid, c.name()))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.open()

    def _move_selected(self, delta: int) -> None:
        cid = self.selected_class_id()
        if cid is not None:
            self.move(cid, delta)
            self.table.selectRow(self.row_of(cid))

    def _merge_selected(self) -> None:
        cid = self.selected_class_id()
        target = self.merge_target.currentData()
        if cid is not None and target is not None:
            self.merge(cid, int(target))
