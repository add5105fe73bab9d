"""File → Copy for annotator…: whom the copy is for and where it goes.

The dialog only asks; the copy itself (:func:`cellviewer.core.merge.copy_for`, SQLite's backup
API, consistent while the project is open) runs in the background when the dialog is
accepted (see :mod:`cellviewer.ui.annotators.install`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.project.users import clean_user
from cellviewer.core.store import SUFFIX


def default_copy_path(project: Path, user: str) -> Path:
    """``cohort-ana.cvproj`` beside ``cohort.cvproj``."""
    name = clean_user(user) or "annotator"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return project.with_name(f"{project.stem}-{safe}{SUFFIX}")


class CopyForDialog(QDialog):
    """Asks for the annotator's name and the copy's file; ``chosen(path, user)`` on OK."""

    chosen = Signal(str, str)

    def __init__(self, project: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("copy_for_dialog")
        self.setWindowTitle("Copy for annotator")
        self.project = Path(project)
        self._path_edited = False
        self.user_edit = QLineEdit(self)
        self.user_edit.setPlaceholderText("name or initials")
        self.path_edit = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Annotator:", self.user_edit)
        form.addRow("Copy:", row)
        note = QLabel("The copy remembers where it came from; File → Merge project… brings "
                      "the annotator's work back into this project later.", self)
        note.setWordWrap(True)
        note.setStyleSheet("color: gray")
        self.error = QLabel("", self)
        self.error.setStyleSheet("color: #c62828")
        self.error.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.error)
        lay.addWidget(self.buttons)
        self.user_edit.textChanged.connect(self._suggest_path)
        self.path_edit.textEdited.connect(lambda _t: setattr(self, "_path_edited", True))
        self._suggest_path("")
        self.resize(520, self.sizeHint().height())

    def _suggest_path(self, user: str) -> None:
        if not self._path_edited:
            self.path_edit.setText(str(default_copy_path(self.project, user)))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Copy for annotator", self.path_edit.text(),
                                              f"CellViewer project (*{SUFFIX})")
        if path:
            self._path_edited = True
            self.path_edit.setText(path if path.endswith(SUFFIX) else path + SUFFIX)

    def _accept(self) -> None:
        user = clean_user(self.user_edit.text())
        path = self.path_edit.text().strip()
        if not user:
            self.error.setText("Give the annotator's name: the copy is made for someone.")
            return
        if not path:
            self.error.setText("Choose where the copy goes.")
            return
        if Path(path).exists():
            self.error.setText(f"{path}: a file of that name already exists.")
            return
        self.chosen.emit(path, user)
        self.accept()
