"""The question asked when work hits a replaced image: Relink… / Accept new content / Cancel.

Prediction and patch-set writing check every image against the project's record before they
crop anything (``cellviewer.core.sources.identity``) and stop with an ``ImageChangedError``
naming the image and what changed. The tool that ran the work opens this dialog (window-modal,
``open`` not ``exec``: the event loop goes on) and, when the user relinked the image or accepted
its new content, runs the same work again; on Cancel nothing changes.

The slow parts run off the GUI thread: checking a chosen file against the record, and opening
and fingerprinting the new content; the project is written in the GUI thread (its connection
belongs to it), as ``cellviewer.core.sources.replaced`` describes.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.sources import image_file_patterns
from cellviewer.core.sources.identity import ImageChangedError, check_image
from cellviewer.core.sources.replaced import (
    StaleMark,
    accept_new_content,
    inspect_new_content,
    relink_checked,
)
from cellviewer.ui.common.workers import BackgroundRunner

RELINKED, ACCEPTED, CANCELLED = "relinked", "accepted", "cancelled"

_runner: BackgroundRunner | None = None


def _background() -> BackgroundRunner:
    """Shared worker threads, kept for the app's life (a dialog closed while its check runs
    must not wait for it)."""
    global _runner
    if _runner is None:
        _runner = BackgroundRunner(max_threads=1)
    return _runner


class ImageChangedDialog(QDialog):
    """Names the changed image and what changed, and carries out the user's choice.

    ``resolved(str)`` is emitted once: :data:`RELINKED` or :data:`ACCEPTED` (run the work
    again) or :data:`CANCELLED`. ``outcome`` keeps it; ``mark`` is the stale mark that
    accepting left (None when no model had predicted the image). ``choose_file`` asks for the
    original file (a file dialog; tests replace it)."""

    resolved = Signal(str)

    def __init__(self, store: Any, error: ImageChangedError, work: str = "the work",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("image_changed_dialog")
        self.setWindowTitle("Image changed")
        self.store, self.error, self.work = store, error, work
        self.record = store.image(error.image_id)
        self.outcome: str | None = None
        self.mark: StaleMark | None = None
        self.choose_file: Callable[[], str | None] = self._ask_for_file
        self._busy = False

        name = html.escape(self.record.name)
        changes = "".join(f"<li>{html.escape(c)}</li>" for c in error.changes)
        self.text = QLabel(
            f"<p><b>{name}</b> is not the image this project recorded:</p><ul>{changes}</ul>"
            f"<p>{html.escape(str(error.path))}</p>"
            "<p>Its cells, and any predictions of them, were made on the recorded image.</p>"
            "<p><b>Relink…</b>: choose where the original file is now (it is checked first).<br>"
            "<b>Accept new content</b>: this file is the image from now on; its predictions "
            "are kept but marked stale until it is predicted again.<br>"
            f"<b>Cancel</b>: change nothing; {html.escape(work)} does not run.</p>")
        self.text.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #b00020")
        self.relink_button = QPushButton("Relink…")
        self.accept_button = QPushButton("Accept new content")
        self.cancel_button = QPushButton("Cancel")
        buttons = QDialogButtonBox()
        buttons.addButton(self.relink_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.accept_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.relink_button.clicked.connect(self.relink)
        self.accept_button.clicked.connect(self.accept_new_content)
        self.cancel_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(560, 320)

    # --- the choices --------------------------------------------------------------------
    def _ask_for_file(self) -> str | None:
        folder = str(self.record.path.parent)
        path, _ = QFileDialog.getOpenFileName(
            self, f"Where is the original {self.record.name}?", folder,
            f"Images ({image_file_patterns()});;All files (*)")
        return path or None

    def relink(self) -> None:
        """Ask for the original file, check it against the record (in the background), then
        point the image at it."""
        if self._busy:
            return
        path = self.choose_file()
        if not path:
            return
        record = self.record
        self._set_busy(True, f"Checking {path}…")
        _background().submit(lambda: check_image(record, path=path),
                             lambda _ok: self._relink_checked(path), self._failed)

    def _relink_checked(self, path: str) -> None:
        try:
            relink_checked(self.store, self.record.id, path)  # a stat now: checked just before
        except Exception as exc:  # the project refused (read-only, already there): say so
            self._failed(str(exc))
            return
        self._finish(RELINKED)

    def accept_new_content(self) -> None:
        """Open and fingerprint the file as it is (in the background), then record it and mark
        the image's predictions stale."""
        if self._busy:
            return
        path = self.record.path
        self._set_busy(True, f"Reading {self.record.name}…")
        _background().submit(lambda: inspect_new_content(path), self._accept_inspected,
                             self._failed)

    def _accept_inspected(self, content: Any) -> None:
        try:
            self.mark = accept_new_content(self.store, self.record.id, content)
        except Exception as exc:  # the file cannot be opened, or the project refused
            self._failed(str(exc))
            return
        self._finish(ACCEPTED)

    def reject(self) -> None:  # Qt override: Cancel, Escape, closing the window
        if self._busy:
            return
        self._finish(CANCELLED)

    # --- state --------------------------------------------------------------------------
    def _set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        for button in (self.relink_button, self.accept_button, self.cancel_button):
            button.setEnabled(not busy)
        self.status.setStyleSheet("" if busy else "color: #b00020")
        self.status.setText(text)

    def _failed(self, message: str) -> None:
        self._set_busy(False, message)

    def _finish(self, outcome: str) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        self._busy = False
        self.resolved.emit(outcome)
        self.done(QDialog.DialogCode.Rejected if outcome == CANCELLED
                  else QDialog.DialogCode.Accepted)


def ask_about_changed_image(parent: QWidget | None, store: Any, error: ImageChangedError,
                            on_resolved: Callable[[str], None], *,
                            work: str = "the work") -> ImageChangedDialog:
    """Open the dialog (window-modal, not blocking) and call ``on_resolved(outcome)`` once the
    user chose; returns the dialog."""
    dialog = ImageChangedDialog(store, error, work, parent)
    dialog.resolved.connect(on_resolved)
    dialog.open()
    return dialog
