"""The classes dock: each class with its colour, key and count on the current image, a check box
to show or hide its markers, the current class for new markers, and "apply to selection"."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.ui.viewer.class_keys import key_of_event
from cellviewer.ui.viewer.markers import UNLABELLED_COLOUR, ClassStyle

UNLABELLED = -1


def swatch(colour: str, size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(colour))
    return QIcon(pm)


class _ClassTree(QTreeWidget):
    def keyPressEvent(self, e) -> None:
        if key_of_event(e) is not None:
            e.ignore()  # class keys label the selected cells (the window), not a tree search
            return
        super().keyPressEvent(e)


class ClassPanel(QWidget):
    currentClassChanged = Signal(int)  # class id for new markers
    hiddenChanged = Signal(set)  # class ids whose markers are hidden (-1: unlabelled)
    applyRequested = Signal(int)  # set the selection's class to this id
    editRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = _ClassTree(self)
        self.tree.setHeaderLabels(["Class", "Key", "Cells"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setToolTip("Check: show markers. Click: class for new markers. "
                             "Double-click: give the selected cells this class.")
        self.apply_button = QPushButton("Apply to selection", self)
        self.edit_button = QPushButton("Edit classes…", self)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.edit_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self._classes: list[ClassStyle] = []
        self._current: int | None = None  # the first class once classes are set
        self._updating = False
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.itemDoubleClicked.connect(
            lambda item, _col: self.applyRequested.emit(item.data(0, Qt.ItemDataRole.UserRole)))
        self.apply_button.clicked.connect(lambda: self.applyRequested.emit(self.current_class()))
        self.edit_button.clicked.connect(self.editRequested)

    def set_classes(self, classes: list[ClassStyle], counts: dict[int, int] | None = None,
                    hidden: set[int] | None = None) -> None:
        counts = counts or {}
        hidden = hidden if hidden is not None else self.hidden()
        self._updating = True
        self.tree.clear()
        self._classes = list(classes)
        entries = [(c.id, c.name, c.color, c.key) for c in classes]
        entries.append((UNLABELLED, "unlabelled", UNLABELLED_COLOUR, ""))
        current_item = None
        for cid, name, colour, key in entries:
            item = QTreeWidgetItem([name, key, f"{counts.get(cid, 0):,}"])
            item.setIcon(0, swatch(colour))
            item.setData(0, Qt.ItemDataRole.UserRole, cid)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(0, Qt.CheckState.Unchecked if cid in hidden else
                               Qt.CheckState.Checked)
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight)
            self.tree.addTopLevelItem(item)
            if cid == self._current:
                current_item = item
        if current_item is None and self.tree.topLevelItemCount():
            current_item = self.tree.topLevelItem(0)
        if current_item is not None:
            self.tree.setCurrentItem(current_item)
            self._current = current_item.data(0, Qt.ItemDataRole.UserRole)
        self._updating = False

    def set_counts(self, counts: dict[int, int]) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            cid = item.data(0, Qt.ItemDataRole.UserRole)
            item.setText(2, f"{counts.get(cid, 0):,}")

    def current_class(self) -> int:
        return UNLABELLED if self._current is None else self._current

    def set_current_class(self, class_id: int) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == class_id:
                self.tree.setCurrentItem(item)
                return

    def hidden(self) -> set[int]:
        out = set()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.checkState(0) == Qt.CheckState.Unchecked:
                out.add(item.data(0, Qt.ItemDataRole.UserRole))
        return out

    def set_class_visible(self, class_id: int, visible: bool) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == class_id:
                item.setCheckState(0, Qt.CheckState.Checked if visible else
                                   Qt.CheckState.Unchecked)

    def _on_current(self, item, _previous) -> None:
        if item is None or self._updating:
            return
        self._current = item.data(0, Qt.ItemDataRole.UserRole)
        self.currentClassChanged.emit(self._current)

    def _on_item_changed(self, item, column: int) -> None:
        if column == 0 and not self._updating:
            self.hiddenChanged.emit(self.hidden())
