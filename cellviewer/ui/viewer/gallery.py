"""The patch gallery: a virtualised grid of 40x40 cell crops, magnified with crisp pixels.

:class:`PatchGallery` holds only ids, class ids and whatever patches it has been given; it paints
the rows on screen and nothing else, so 100,000 items cost what 50 do. Patches come either as one
``(N, 40, 40, 3)`` uint8 array (:meth:`PatchGallery.set_items` with ``patches=``, may be a
memmap) or piecemeal: the gallery emits ``patchesNeeded`` with the indices on screen (and a screen
ahead) that it lacks, and whoever crops them calls :meth:`PatchGallery.set_patches`. Piecemeal
patches live in a bounded LRU, so scrolling through 100,000 cells does not keep 100,000 crops.

Clicking a crop selects it and emits ``cellActivated`` (the main window centres the slide on that
cell); ctrl-click toggles, shift-click selects a range, ctrl+A all; arrow keys move. Digit keys
and Delete are left to the main window, which applies them to the selection (the same one the
slide view shows).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.cells.order import ORDERS, SLIDE, SURE_FIRST, UNSURE_FIRST
from cellviewer.ui.viewer.markers import ClassStyle
from cellviewer.ui.viewer.padding import Inside, paint_padding
from cellviewer.ui.viewer.tiles import array_to_qimage

PATCH = 40
LABEL_H = 16
GAP = 10
CACHE_ITEMS = 6000  # piecemeal patches kept (about 40 MB as 32-bit images)


class PatchGallery(QAbstractScrollArea):
    cellActivated = Signal(str)  # a crop was clicked: centre the slide on this cell
    selectionChanged = Signal(object)  # ids (a list; object: not converted to Qt)
    patchesNeeded = Signal(object)  # np.ndarray of item indices without a patch

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setMouseTracking(False)
        self.verticalScrollBar().valueChanged.connect(self.viewport().update)
        self._ids = np.empty(0, dtype=object)
        self._cls = np.empty(0, dtype=np.int64)
        self._array: np.ndarray | None = None
        self._scores: np.ndarray | None = None
        self._pred: np.ndarray | None = None
        self._images: OrderedDict[int, QImage] = OrderedDict()
        self._padding: dict[int, Inside] = {}  # crops that leave the image (padding.py)
        self._requested: set[int] = set()
        self._styles: dict[int, ClassStyle] = {}
        self._selected: set[int] = set()
        self._anchor = -1
        self._current = -1
        self._row_of: dict[str, int] | None = None
        self.magnification = 2
        self._need_timer = QTimer(self, singleShot=True, interval=0)
        self._need_timer.timeout.connect(self._emit_needed)
        self._missing: list[int] = []

    # --- content -----------------------------------------------------------------------------
    def set_classes(self, classes: list[ClassStyle]) -> None:
        self._styles = {c.id: c for c in classes}
        self.viewport().update()

    def set_items(self, ids, class_ids, patches: np.ndarray | None = None,
                  scores: np.ndarray | None = None, predicted: np.ndarray | None = None,
                  keep_scroll: bool = False) -> None:
        """Show these cells (in this order); ``patches`` (N, 40, 40, 3) uint8 if already cut;
        ``scores``: a model's confidence per cell (NaN for none), shown with the name of its
        ``predicted`` class (project class ids, -1 none) — the call the number belongs to — and
        formatted only for the crops on screen. ``keep_scroll``: stay where the user was (a
        refresh after an edit), else go back to the top."""
        self._ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=object)
        self._cls = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        if len(self._cls) != len(self._ids):
            raise ValueError(f"{len(self._ids)} ids but {len(self._cls)} class ids")
        self._scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        if self._scores is not None and len(self._scores) != len(self._ids):
            raise ValueError(f"{len(self._ids)} ids but {len(self._scores)} scores")
        self._pred = None if predicted is None else np.asarray(predicted, dtype=np.int64)
        if self._pred is not None and len(self._pred) != len(self._ids):
            raise ValueError(f"{len(self._ids)} ids but {len(self._pred)} predicted classes")
        scroll = self.verticalScrollBar().value() if keep_scroll else 0
        if patches is not None and (patches.ndim != 4 or len(patches) != len(self._ids)):
            raise ValueError(f"patches must be ({len(self._ids)}, 40, 40, 3), got {patches.shape}")
        self._array = patches
        self._missing = []
        self._images.clear()
        self._padding.clear()
        self._requested.clear()
        self._row_of = None
        self._selected = set()
        self._anchor = self._current = -1
        self._update_scroll_range()
        self.verticalScrollBar().setValue(scroll)
        self.viewport().update()

    def count(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return [str(i) for i in self._ids]

    def ids_at(self, indices) -> list[str]:
        return [str(i) for i in self._ids[np.asarray(indices, dtype=np.int64)]]

    def set_patches(self, indices, patches: np.ndarray,
                    insides: Sequence[Inside | None] | None = None) -> None:
        """Give the crops of items ``indices`` (from a ``patchesNeeded`` request);
        ``insides``: for a reflect-padded crop, the part from inside the image (it is marked)."""
        insides = insides if insides is not None else [None] * len(patches)
        for i, patch, inside in zip(np.asarray(indices).tolist(), patches, insides,
                                    strict=True):
            if 0 <= i < len(self._ids):
                self._images[i] = array_to_qimage(patch)
                self._images.move_to_end(i)
                if inside is None:
                    self._padding.pop(i, None)
                else:
                    self._padding[i] = inside
        while len(self._images) > CACHE_ITEMS:
            old, _ = self._images.popitem(last=False)
            self._requested.discard(old)
            self._padding.pop(old, None)
        self.viewport().update()

    def forget_patches(self, indices=None) -> None:
        """Drop crops (all, or some) so they are asked for again, e.g. after a cell moved."""
        if indices is None:
            self._images.clear()
            self._requested.clear()
            self._padding.clear()
        else:
            for i in np.asarray(indices).tolist():
                self._images.pop(i, None)
                self._requested.discard(i)
                self._padding.pop(i, None)
        self.viewport().update()

    def padding_of(self, index: int) -> Inside | None:
        """The inside part of item ``index``'s crop when it is reflect-padded, else None."""
        return self._padding.get(index)

    def has_patch(self, index: int) -> bool:
        return self._array is not None or index in self._images

    def index_of(self, cell_id: str) -> int:
        if self._row_of is None:
            self._row_of = {str(c): i for i, c in enumerate(self._ids.tolist())}
        return self._row_of.get(str(cell_id), -1)

    def update_labels(self, ids, class_ids) -> None:
        """New labels for some of the cells shown (``class_ids``: one per id, -1 none)."""
        for cid, k in zip(ids, np.asarray(class_ids, dtype=np.int64).tolist(), strict=True):
            i = self.index_of(cid)
            if i >= 0:
                self._cls[i] = k
        self.viewport().update()

    def update_predictions(self, ids, scores, predicted) -> None:
        """New confidences and predicted classes for some of the cells shown."""
        if self._scores is None or self._pred is None:
            return
        for cid, sc, k in zip(ids, np.asarray(scores).tolist(),
                              np.asarray(predicted).tolist(), strict=True):
            i = self.index_of(cid)
            if i >= 0:
                self._scores[i], self._pred[i] = sc, k
        self.viewport().update()

    def caption(self, i: int) -> str:
        """What is written under crop ``i``: its label, or, when ordered by a model's
        confidence, that confidence with the class the model called ("0.53 burr cell");
        nothing numeric for a cell the model has not predicted."""
        if self._scores is not None and self._pred is not None:
            score = self._scores[i]
            if np.isnan(score):
                return "not predicted"
            style = self._styles.get(int(self._pred[i]))
            return f"{score:.2f} {style.name if style else 'no class'}"
        style = self._styles.get(int(self._cls[i]))
        return style.name if style else "unlabelled"

    def class_ids(self) -> np.ndarray:
        return self._cls.copy()

    # --- selection ---------------------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        return [str(self._ids[i]) for i in sorted(self._selected)]

    def select_ids(self, ids, emit: bool = False) -> None:
        rows = {self.index_of(c) for c in ids}
        rows.discard(-1)
        self._set_selection(rows, emit)

    def _set_selection(self, rows: set[int], emit: bool = True) -> None:
        changed = rows != self._selected
        self._selected = rows
        self.viewport().update()
        if emit and changed:
            self.selectionChanged.emit(self.selected_ids())

    # --- geometry ----------------------------------------------------------------------------
    def set_magnification(self, m: int) -> None:
        self.magnification = max(1, int(m))
        self._update_scroll_range()
        self.viewport().update()

    def cell_size(self) -> tuple[int, int]:
        side = PATCH * self.magnification
        return side + GAP, side + LABEL_H + GAP

    def columns(self) -> int:
        return max(1, (self.viewport().width() - GAP) // self.cell_size()[0])

    def _update_scroll_range(self) -> None:
        _, ch = self.cell_size()
        rows = math.ceil(len(self._ids) / self.columns())
        total = rows * ch + GAP
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, total - self.viewport().height()))
        bar.setPageStep(max(1, self.viewport().height()))
        bar.setSingleStep(ch // 2)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_scroll_range()

    def item_rect(self, index: int) -> QRect:
        """The crop's square in viewport coordinates."""
        cw, ch = self.cell_size()
        cols = self.columns()
        r, c = divmod(index, cols)
        side = PATCH * self.magnification
        return QRect(GAP + c * cw, GAP + r * ch - self.verticalScrollBar().value(), side, side)

    def index_at(self, pos: QPoint) -> int:
        cw, ch = self.cell_size()
        x, y = pos.x() - GAP, pos.y() - GAP + self.verticalScrollBar().value()
        if x < 0 or y < 0:
            return -1
        c, r = x // cw, y // ch
        if c >= self.columns() or x - c * cw >= cw - GAP:
            return -1
        i = int(r * self.columns() + c)
        return i if i < len(self._ids) else -1

    def scroll_to(self, index: int) -> None:
        rect = self.item_rect(index)
        bar = self.verticalScrollBar()
        if rect.top() < 0:
            bar.setValue(bar.value() + rect.top() - GAP)
        elif rect.bottom() + LABEL_H > self.viewport().height():
            bar.setValue(bar.value() + rect.bottom() + LABEL_H + GAP - self.viewport().height())

    def visible_range(self) -> tuple[int, int]:
        """[first, last) item indices on screen."""
        _, ch = self.cell_size()
        cols = self.columns()
        top = self.verticalScrollBar().value()
        first = max(0, (top // ch) * cols)
        last = min(len(self._ids), ((top + self.viewport().height()) // ch + 1) * cols)
        return first, last

    # --- painting ----------------------------------------------------------------------------
    def _image(self, i: int) -> QImage | None:
        if self._array is not None:
            return array_to_qimage(np.asarray(self._array[i]))
        img = self._images.get(i)
        if img is not None:
            self._images.move_to_end(i)
        return img

    def paintEvent(self, event) -> None:
        p = QPainter(self.viewport())
        p.fillRect(self.viewport().rect(), QColor("#202020"))
        first, last = self.visible_range()
        font = QFont(p.font())
        font.setPointSizeF(8)
        p.setFont(font)
        missing = []
        side = PATCH * self.magnification
        for i in range(first, last):
            rect = self.item_rect(i)
            cid = int(self._cls[i])
            style = self._styles.get(cid)
            colour = QColor(style.color) if style else QColor("#ffffff")
            # frames go outside the crop, so every pixel of the patch shows
            if i in self._selected:
                p.fillRect(rect.adjusted(-4, -4, 4, LABEL_H + 2), QColor("#ffff00"))
            p.fillRect(rect.adjusted(-2, -2, 2, 2), colour)
            img = self._image(i)
            if img is None:
                p.fillRect(rect, QColor("#3a3a3a"))
                missing.append(i)
            else:
                p.drawImage(rect, img)  # no smoothing: every pixel a crisp square
                paint_padding(p, QRectF(rect), self._padding.get(i))
            name = self.caption(i)
            p.setPen(QColor("#000000") if i in self._selected else QColor("#e0e0e0"))
            text = p.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, side)
            p.drawText(QRect(rect.left(), rect.bottom() + 1, side, LABEL_H),
                       Qt.AlignmentFlag.AlignCenter, text)
        p.end()
        if self._array is None:
            # ask for what is on screen, and one screen ahead, once
            ahead = min(len(self._ids), last + (last - first))
            want = [i for i in range(first, ahead) if i not in self._images
                    and i not in self._requested]
            if want:
                self._missing = want
                self._need_timer.start()

    def _emit_needed(self) -> None:
        n = len(self._ids)  # (the items may have changed since the paint that asked)
        want = [i for i in self._missing if i < n and i not in self._images
                and i not in self._requested]
        self._missing = []
        if want:
            self._requested.update(want)
            self.patchesNeeded.emit(np.asarray(want, dtype=np.int64))

    # --- mouse and keys ----------------------------------------------------------------------
    def mousePressEvent(self, e: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        i = self.index_at(e.position().toPoint())
        if i < 0 or e.button() != Qt.MouseButton.LeftButton:
            return
        mods = e.modifiers()
        if mods & Qt.KeyboardModifier.ShiftModifier and self._anchor >= 0:
            lo, hi = sorted((self._anchor, i))
            rows = set(range(lo, hi + 1))
            if mods & Qt.KeyboardModifier.ControlModifier:
                rows |= self._selected
            self._set_selection(rows)
        elif mods & Qt.KeyboardModifier.ControlModifier:
            self._set_selection(self._selected ^ {i})
            self._anchor = i
        else:
            self._anchor = i
            self._set_selection({i})
            self.cellActivated.emit(str(self._ids[i]))
        self._current = i

    def keyPressEvent(self, e: QKeyEvent) -> None:
        n = len(self._ids)
        key = e.key()
        if key == Qt.Key.Key_A and e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._set_selection(set(range(n)))
            return
        moves = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Up: -self.columns(),
                 Qt.Key.Key_Down: self.columns()}
        if key in moves and n:
            i = min(n - 1, max(0, (self._current if self._current >= 0 else 0) + moves[key]))
            self._current = i
            if e.modifiers() & Qt.KeyboardModifier.ShiftModifier and self._anchor >= 0:
                lo, hi = sorted((self._anchor, i))
                self._set_selection(set(range(lo, hi + 1)))
            else:
                self._anchor = i
                self._set_selection({i})
                self.cellActivated.emit(str(self._ids[i]))
            self.scroll_to(i)
            return
        e.ignore()  # digits, Delete, undo: the main window applies them to the selection


#: the gallery's orders: (label, key); the confidence ones need the active model's predictions
#: the gallery's orders (words of cellviewer.core.cells.order), as its menu lists them
GALLERY_ORDERS = (SLIDE, UNSURE_FIRST, SURE_FIRST)


class GalleryPanel(QWidget):
    """The gallery with its filter (selection, all cells, or one class), its order (slide, or
    the active model's confidence: a montage from doubtful to sure) and magnification."""

    filterChanged = Signal(object)  # "selection", "all", or a class id (int)
    orderChanged = Signal(str)  # one of GALLERY_ORDERS

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gallery = PatchGallery(self)
        self.filter = QComboBox(self)
        self.filter.setToolTip("Which cells of the current image to show")
        self.order = QComboBox(self)
        for key in GALLERY_ORDERS:
            self.order.addItem(ORDERS[key].capitalize(), key)
        self.order.setToolTip("Slide order, or by the active model's confidence in its "
                              "prediction (shown on each crop): the doubtful calls first, or "
                              "the surest")
        self.order.currentIndexChanged.connect(
            lambda _i: self.orderChanged.emit(self.current_order()))
        for combo in (self.filter, self.order):  # may shrink: the dock must not crowd the slide
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        self.zoom = QSpinBox(self)
        self.zoom.setRange(1, 6)
        self.zoom.setValue(2)
        self.zoom.setSuffix("x")
        self.zoom.setToolTip("Magnification of the 40x40 crops")
        self.zoom.valueChanged.connect(self.gallery.set_magnification)
        self.count = QLabel(self)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.filter, 1)
        top.addWidget(self.order)
        top.addWidget(self.zoom)
        top.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.gallery, 1)
        self.filter.currentIndexChanged.connect(
            lambda _i: self.filterChanged.emit(self.filter.currentData()))
        self.set_classes([])

    def set_classes(self, classes: list[ClassStyle], counts: dict[int, int] | None = None) -> None:
        counts = counts or {}
        current = self.current_filter()
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem("Selected cells", "selection")
        self.filter.addItem("All cells of this image", "all")
        self.filter.addItem("Unlabelled", -1)
        for c in classes:
            n = counts.get(c.id)
            self.filter.addItem(f"{c.name}" + (f" ({n})" if n is not None else ""), c.id)
        i = self.filter.findData(current)
        self.filter.setCurrentIndex(max(0, i))
        self.filter.blockSignals(False)
        self.gallery.set_classes(classes)

    def current_filter(self):
        return self.filter.currentData() if self.filter.count() else "selection"

    def current_order(self) -> str:
        return str(self.order.currentData())

    def set_order(self, key: str) -> None:
        i = self.order.findData(key)
        if i >= 0:
            self.order.setCurrentIndex(i)

    def set_filter(self, value) -> None:
        i = self.filter.findData(value)
        if i >= 0:
            self.filter.setCurrentIndex(i)

    def show_count(self, n: int) -> None:
        self.count.setText(f"{n:,} cells")
