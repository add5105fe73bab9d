"""Edit → Roles…: who is the annotator, the checker and the pathologist of the project.

Each role is kept with its person's name in the project (:func:`cellviewer.core.merge.protocol.
set_role`, a project setting: neither undoable nor history). Changes apply at once."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.merge import protocol
from cellviewer.core.project.users import clean_user
from cellviewer.core.store import ProjectError


class RolesDialog(QDialog):
    """The people of the project and their roles (a table, a row to add one, Remove)."""

    def __init__(self, store: Any, suggested: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("roles_dialog")
        self.setWindowTitle("Roles")
        self.store = store
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["name", "role"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.name_edit = QLineEdit(suggested or "")
        self.name_edit.setPlaceholderText("name")
        self.role_combo = QComboBox()
        self.role_combo.addItems(list(protocol.ROLES))
        self.set_button = QPushButton("Set")
        self.remove_button = QPushButton("Remove")
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c62828")
        self.error.setWordWrap(True)
        note = QLabel("The study's protocol: an annotator labels, a checker double-checks "
                      "(status checked), a pathologist makes the final review (reviewed).")
        note.setWordWrap(True)
        note.setStyleSheet("color: gray")
        row = QHBoxLayout()
        row.addWidget(self.name_edit, 1)
        row.addWidget(self.role_combo)
        row.addWidget(self.set_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(note)
        lay.addWidget(self.table, 1)
        lay.addLayout(row)
        lay.addWidget(self.remove_button)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.set_button.clicked.connect(
            lambda: self.set_role(self.name_edit.text(), self.role_combo.currentText()))
        self.remove_button.clicked.connect(self._remove_selected)
        self.table.currentCellChanged.connect(lambda row, *_: self._pick(row))
        self.refresh()
        self.resize(420, 360)

    def refresh(self) -> None:
        known = protocol.roles(self.store)
        self.table.setRowCount(len(known))
        for i, (name, role) in enumerate(sorted(known.items())):
            for col, text in enumerate((name, role)):
                item = QTableWidgetItem(text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(i, col, item)

    def roles(self) -> dict[str, str]:
        return protocol.roles(self.store)

    def set_role(self, name: str, role: str | None) -> bool:
        """Record ``name``'s role (None: forget it); False (the dialog says why) if refused."""
        who = clean_user(name) or ""
        try:
            protocol.set_role(self.store, who, role)
        except (ValueError, ProjectError) as exc:
            self.error.setText(str(exc))
            return False
        self.error.setText("")
        self.refresh()
        return True

    def _pick(self, row: int) -> None:
        name, role = self.table.item(row, 0), self.table.item(row, 1)
        if name is not None and role is not None:
            self.name_edit.setText(name.text())
            self.role_combo.setCurrentText(role.text())

    def _remove_selected(self) -> None:
        item = self.table.item(self.table.currentRow(), 0)
        if item is not None:
            self.set_role(item.text(), None)
