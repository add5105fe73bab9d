"""The cell-details dock: the selected cell's patch, label, source, review status, who changed it
and when, each annotator's label (after a merge of their copies, filled in the background by
cellviewer.ui.annotators), and its full history (append-only in the store)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.ui.viewer.padding import Inside, describe, paint_padding
from cellviewer.ui.viewer.tiles import array_to_qimage

PATCH_ZOOM = 4


class CellDetails(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.patch = QLabel(self)
        self.patch.setFixedSize(40 * PATCH_ZOOM, 40 * PATCH_ZOOM)
        self.patch.setStyleSheet("background: #303030")
        self.patch.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        for name in ("Cell", "Position", "Class", "Source", "Review", "Changed by", "When",
                     "Annotators", "Crop"):
            label = QLabel("", self)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(name in ("Crop", "Annotators"))
            form.addRow(name + ":", label)
            self.fields[name] = label
        self.history = QTreeWidget(self)
        self.history.setHeaderLabels(["When", "Who", "Action", "Change"])
        self.history.setRootIsDecorated(False)
        self.history.setColumnWidth(0, 118)
        self.history.setColumnWidth(1, 70)
        self.history.setColumnWidth(2, 50)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.patch, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addLayout(form)
        layout.addWidget(self.history, 1)
        self.cell_id: str | None = None
        self.padding: Inside | None = None
        self.clear()

    def clear(self, text: str = "No cell selected") -> None:
        self.cell_id = None
        self.padding = None
        self.patch.clear()
        self.patch.setText("")
        for label in self.fields.values():
            label.setText("")
        self.fields["Cell"].setText(text)
        self.history.clear()

    def show_cell(self, cell, class_name: str, history, mpp: float | None = None) -> None:
        """``cell``: a CellRecord; ``history``: HistoryRecords, oldest first."""
        if self.cell_id != str(cell.id):
            self.fields["Annotators"].setText("")  # another cell: its own come later
        self.cell_id = str(cell.id)
        pos = f"{cell.x:.1f}, {cell.y:.1f} px"
        if mpp:
            pos += f"  ({cell.x * mpp:.1f}, {cell.y * mpp:.1f} µm)"
        values = {
            "Cell": str(cell.id), "Position": pos, "Class": class_name,
            "Source": _source_text(cell), "Review": cell.review_status,
            "Changed by": cell.updated_by, "When": cell.updated_at,
        }
        for key, value in values.items():
            self.fields[key].setText(str(value))
        self.history.clear()
        for h in reversed(list(history)):
            change = ""
            if h.old_class != h.new_class:
                change = f"{h.old_class or '—'} → {h.new_class or '—'}"
            elif h.old_status != h.new_status:
                change = f"{h.old_status or '—'} → {h.new_status or '—'}"
            item = QTreeWidgetItem([str(h.at).replace("T", " ")[:19], h.user, h.action, change])
            item.setToolTip(3, f"source: {h.source}")
            self.history.addTopLevelItem(item)

    def set_annotators(self, cell_id: str, labels: dict[str, str],
                       open_conflicts: int = 0) -> None:
        """Each annotator's label of the cell (``{annotator: class name}``, from their own
        label or confirm actions), and whether its disagreement is still open."""
        if cell_id != self.cell_id:
            return  # the selection moved on meanwhile
        text = " · ".join(f"{who}: {name}" for who, name in sorted(labels.items()))
        if open_conflicts:
            text += (" — " if text else "") + (
                f"{open_conflicts} open conflict{'s' if open_conflicts != 1 else ''}")
        self.fields["Annotators"].setText(text)

    def show_many(self, n: int, padded: int | None = None) -> None:
        """``padded``: how many of them have crops that leave the image (reflect-padded)."""
        self.clear(f"{n:,} cells selected")
        if padded is not None:
            self.fields["Crop"].setText(
                f"{padded:,} of {n:,} near the image border (reflect-padded crops)"
                if padded else "all inside the image")

    def set_patch(self, cell_id: str, patch: np.ndarray, inside: Inside | None = None) -> None:
        """The cell's crop; ``inside``: the part of it from inside the image when the crop
        is reflect-padded (the rest is hatched, and the Crop line says how much)."""
        if cell_id != self.cell_id:
            return  # the selection moved on while the crop was made
        img = array_to_qimage(patch)
        side = 40 * PATCH_ZOOM
        pm = QPixmap.fromImage(img).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)
        if inside is not None:
            painter = QPainter(pm)
            paint_padding(painter, QRectF(0, 0, side, side), inside)
            painter.end()
        self.patch.setPixmap(pm)
        self.padding = inside
        self.fields["Crop"].setText(describe(inside))


def _source_text(cell) -> str:
    """The label source, and for a detection whether it still waits and its score."""
    text = str(cell.label_source)
    notes = []
    if getattr(cell, "proposed", False):
        notes.append("proposal, not yet accepted")
    score = getattr(cell, "score", None)
    if score is not None:
        notes.append(f"score {score:.2f}")
    return f"{text} ({', '.join(notes)})" if notes else text
