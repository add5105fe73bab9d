"""Finding things: a filter over the image list, Edit → Go to… (a cell id, or x, y in pixels
or µm) and Edit → Select by class and status….

Go to… takes what a user has at hand: a cell id copied from an export (or its first 8
characters, among the open image's cells), or a position read off the status bar, another
viewer or a paper, "x, y" in level-0 pixels or "x, y µm" (converted with the image's pixel
size; refused, saying why, where it is unknown).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.store.schema import REVIEW_STATUSES

MIN_PREFIX = 6  # an id prefix shorter than this is too likely to match many cells
_NUMBER = r"[-+]?\d[\d,_]*(?:\.\d+)?|[-+]?\.\d+"
_POINT = re.compile(
    rf"^\s*\(?\s*(?:x\s*[=:]?\s*)?({_NUMBER})\s*(px|µm|um)?\s*[,;\s]\s*(?:y\s*[=:]?\s*)?"
    rf"({_NUMBER})\s*(px|µm|um|microns?)?\s*\)?\s*(px|µm|um|microns?)?\s*$",
    re.IGNORECASE)


@dataclass(frozen=True)
class GoTarget:
    """Where Go to… leads: a cell (``cell_id``) or a point (``x``, ``y`` and its unit)."""

    cell_id: str | None = None
    x: float = 0.0
    y: float = 0.0
    unit: str = "px"  # "px" or "um"


def parse_goto(text: str) -> GoTarget:
    """``"1200, 850"``, ``"x 1200 y 850 px"``, ``"(300.5, 212) µm"`` or a cell id; raises
    ValueError with what was expected."""
    t = text.strip()
    if not t:
        raise ValueError("Type a cell id, or a position as x, y (pixels) or x, y µm.")
    m = _POINT.match(t)
    if m:
        units = {u.lower() for u in (m.group(2), m.group(4), m.group(5)) if u}
        unit = "um" if units & {"µm", "um", "micron", "microns"} else "px"
        if units & {"px"} and unit == "um":
            raise ValueError(f"{t!r}: one unit for both, pixels or µm")
        x, y = (float(g.replace(",", "").replace("_", "")) for g in (m.group(1), m.group(3)))
        return GoTarget(x=x, y=y, unit=unit)
    if re.fullmatch(r"[0-9A-Za-z-]+", t):
        return GoTarget(cell_id=t)
    raise ValueError(f"{t!r} is neither a cell id nor a position (x, y or x, y µm).")


def to_pixels(target: GoTarget, mpp: float | None) -> tuple[float, float]:
    """A point target in level-0 pixels (µm need the image's pixel size)."""
    if target.unit == "px":
        return target.x, target.y
    if not mpp:
        raise ValueError("This image's pixel size is not known: give the position in pixels.")
    return target.x / mpp, target.y / mpp


def match_cell_id(ids: Sequence[str], typed: str) -> str | None:
    """The one id among ``ids`` equal to ``typed`` or starting with it (≥ 6 characters)."""
    typed = typed.strip().lower()
    exact = [i for i in ids if i.lower() == typed]
    if exact:
        return exact[0]
    if len(typed) < MIN_PREFIX:
        return None
    found = [i for i in ids if i.lower().startswith(typed)]
    return found[0] if len(found) == 1 else None


def cells_matching(class_ids: np.ndarray, review: np.ndarray, class_id: int | None,
                   status: str | None) -> np.ndarray:
    """Indices of the cells with ``class_id`` (-1 unlabelled, None any) and review
    ``status`` (a name of REVIEW_STATUSES, None any)."""
    keep = np.ones(len(class_ids), dtype=bool)
    if class_id is not None:
        keep &= class_ids == int(class_id)
    if status is not None:
        keep &= review == REVIEW_STATUSES.index(status)
    return np.flatnonzero(keep)


class GoToDialog(QDialog):
    """A line for a cell id or a position; what it did (or why not) below it."""

    def __init__(self, window, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.setWindowTitle("Go to")
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("cell id, or x, y (px), or x, y µm")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.go)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Cell id, or a position on the current image:"))
        lay.addWidget(self.edit)
        lay.addWidget(self.message)
        lay.addWidget(buttons)

    def go(self) -> bool:
        """Go there and close, or say why not and stay open."""
        try:
            done = go_to(self.window, self.edit.text())
        except ValueError as exc:
            self.message.setText(f"<span style='color:#b00020'>{exc}</span>")
            self.adjustSize()  # the whole message, however long
            return False
        self.window.show_status(done, 6000)
        self.accept()
        return True


def go_to(window, text: str) -> str:
    """Centre the view on a cell or a point; returns what it did, raises ValueError why not."""
    target = parse_goto(text)
    if target.cell_id is not None:
        ids = [str(i) for i in window.session.cells.ids]
        cell = match_cell_id(ids, target.cell_id) or target.cell_id
        if window.centre_on_cell(cell):
            window.select_cells([cell])
            return f"Cell {cell}"
        raise ValueError(f"No cell {target.cell_id!r} in this project.")
    source = window.current_image_source()
    if source is None:
        raise ValueError("Open an image first.")
    x, y = to_pixels(target, source.mpp)
    w, h = (int(v) for v in source.dimensions)
    if not (0 <= x <= w and 0 <= y <= h):
        raise ValueError(f"({x:,.0f}, {y:,.0f}) px is outside the image ({w:,} × {h:,} px).")
    window.view.centre_on(x, y, max(window.view.zoom(), 1.0))
    return f"Centred on x {x:,.0f}  y {y:,.0f} px"


class SelectDialog(QDialog):
    """Select the open image's cells of a class and a review status."""

    def __init__(self, window, classes: Sequence, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.setWindowTitle("Select by class and status")
        self.class_combo = QComboBox()
        self.class_combo.addItem("any class", None)
        self.class_combo.addItem("unlabelled", -1)
        for c in classes:
            self.class_combo.addItem(c.name, int(c.id))
        self.status_combo = QComboBox()
        self.status_combo.addItem("any status", None)
        for s in REVIEW_STATUSES:
            self.status_combo.addItem(s, s)
        self.count = QLabel("")
        form = QFormLayout()
        form.addRow("Class", self.class_combo)
        form.addRow("Review status", self.status_combo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Select")
        buttons.accepted.connect(self.select)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.count)
        lay.addWidget(buttons)
        for combo in (self.class_combo, self.status_combo):
            combo.currentIndexChanged.connect(lambda _i: self._count())
        self._count()

    def matching_ids(self) -> list[str]:
        cells = self.window.session.cells
        rows = cells_matching(cells.class_id, cells.review, self.class_combo.currentData(),
                              self.status_combo.currentData())
        return [str(i) for i in cells.ids[rows]]

    def _count(self) -> None:
        self.count.setText(f"{len(self.matching_ids()):,} cells of the current image")

    def select(self) -> int:
        ids = self.matching_ids()
        self.window.select_cells(ids)
        self.window.show_status(f"Selected {len(ids):,} cells", 4000)
        self.accept()
        return len(ids)


class ImageFilter(QLineEdit):
    """A filter line above the image list: only images whose name or folder contains the
    typed text stay listed (it filters again whenever the list is refreshed)."""

    def __init__(self, images, count: QLabel) -> None:
        super().__init__()
        self.images, self.count = images, count
        self.setObjectName("image_filter")
        self.setPlaceholderText("filter images by name")
        self.setClearButtonEnabled(True)
        self.textChanged.connect(self.apply)
        # (bound methods: the connections end with this widget)
        images.model().rowsInserted.connect(self.apply)
        images.model().modelReset.connect(self.apply)

    def apply(self, *_args) -> None:
        needle = self.text().strip().lower()
        shown = 0
        for row in range(self.images.count()):
            item = self.images.item(row)
            hit = not needle or needle in item.toolTip().lower()
            item.setHidden(not hit)
            shown += hit
        self.count.setText(f"{shown:,} of {self.images.count():,} images" if needle else "")
        self.count.setVisible(bool(needle))


def install_image_filter(window) -> ImageFilter:
    """The filter line and the count of what it shows, above and below the image list."""
    images = window.image_list
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    count = QLabel("")
    count.setObjectName("image_filter_count")
    edit = ImageFilter(images, count)
    lay.addWidget(edit)
    lay.addWidget(images)
    lay.addWidget(count)
    window.images_dock.setWidget(box)
    edit.apply()
    window.image_filter = edit
    return edit


def install(window, classes) -> dict[str, QAction]:
    """Edit → Go to… (Ctrl+G), Edit → Select by class and status… (Ctrl+Shift+A) and the
    image-list filter (Ctrl+Shift+F focuses it)."""
    install_image_filter(window)
    edit = window.menu("&Edit")
    goto = QAction("&Go to…", window)
    goto.setShortcut(QKeySequence("Ctrl+G"))
    goto.setStatusTip("Go to a cell id, or a position in pixels or µm")
    select = QAction("Select by class and &status…", window)
    select.setShortcut(QKeySequence("Ctrl+Shift+A"))
    find = QAction("&Filter images", window)
    find.setShortcut(QKeySequence("Ctrl+Shift+F"))

    def open_goto() -> None:
        dialog = GoToDialog(window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        window.goto_dialog = dialog
        dialog.open()

    def open_select() -> None:
        dialog = SelectDialog(window, classes())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        window.select_dialog = dialog
        dialog.open()

    def focus_filter() -> None:
        window.images_dock.show()
        window.images_dock.raise_()
        window.image_filter.setFocus()
        window.image_filter.selectAll()

    goto.triggered.connect(lambda _c=False: open_goto())
    select.triggered.connect(lambda _c=False: open_select())
    find.triggered.connect(lambda _c=False: focus_filter())
    edit.addSeparator()
    for action in (goto, select, find):
        edit.addAction(action)
    return {"goto": goto, "select": select, "filter": find}
