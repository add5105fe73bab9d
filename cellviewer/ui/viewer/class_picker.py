"""The quick class picker: Edit → Label as… (Ctrl+L) opens a small box; typing the first
letters of a class's name ("mac" for macrocyte, "t c" for target cell) narrows the list and
Enter labels the selected cells with the first match. For class sets longer than the 18
number keys, and for people who remember names rather than numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from cellviewer.ui.viewer.class_panel import swatch
from cellviewer.ui.viewer.markers import ClassStyle


def matching(classes: Sequence[ClassStyle], typed: str) -> list[ClassStyle]:
    """The classes whose name starts with ``typed`` (case-insensitive) first, then those
    where each typed word starts a word of the name, in order ("t c" → target cell)."""
    text = typed.strip().lower()
    if not text:
        return list(classes)
    first = [c for c in classes if c.name.lower().startswith(text)]
    parts = text.split()

    def words_match(name: str) -> bool:
        words = name.lower().split()
        i = 0
        for part in parts:
            while i < len(words) and not words[i].startswith(part):
                i += 1
            if i == len(words):
                return False
            i += 1
        return True

    rest = [c for c in classes if c not in first and words_match(c.name)]
    return first + rest


class ClassPicker(QDialog):
    """``chosen(class id)`` when Enter is pressed with a match (or a match double-clicked)."""

    chosen = Signal(int)

    def __init__(self, classes: Sequence[ClassStyle], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Label as…")
        self.classes = list(classes)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("type the first letters of a class")
        self.list = QListWidget()
        lay = QVBoxLayout(self)
        lay.addWidget(self.edit)
        lay.addWidget(self.list)
        self.edit.textChanged.connect(self._refill)
        self.edit.returnPressed.connect(self._accept_first)
        self.list.itemActivated.connect(self._accept_item)
        self._refill("")

    def _refill(self, text: str) -> None:
        self.list.clear()
        for c in matching(self.classes, text):
            item = QListWidgetItem(swatch(c.color), f"{c.name}   {c.key}".rstrip())
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def _accept_first(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._accept_item(item)

    def _accept_item(self, item: QListWidgetItem) -> None:
        self.chosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))
        self.accept()

    def keyPressEvent(self, e) -> None:  # Qt override: arrows move in the list while typing
        if e.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            row = self.list.currentRow() + (1 if e.key() == Qt.Key.Key_Down else -1)
            self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
            return
        super().keyPressEvent(e)


def install(window, classes: Callable[[], Sequence[ClassStyle]],
            label: Callable[[int], object]) -> QAction:
    """Edit → Label as… (Ctrl+L): the picker over ``classes()``; ``label(class id)``."""
    action = QAction("&Label as…", window)
    action.setShortcut(QKeySequence("Ctrl+L"))
    action.setStatusTip("Label the selected cells by typing the first letters of a class")

    def open_picker() -> None:
        picker = ClassPicker(classes(), window)
        picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        picker.chosen.connect(label)
        window.class_picker = picker
        picker.open()

    action.triggered.connect(lambda _c=False: open_picker())
    window.menu("&Edit").addAction(action)
    return action
