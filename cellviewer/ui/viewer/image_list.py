"""The project's images: name, size and cell count, with a thumbnail made in a worker thread.

The thumbnails are read once the list has been painted (a zero timer from its first paint
after new images came): at start-up the demo's 40 reads would otherwise compete for the cores
with the main window's first paint (they decode images and hold the GIL in parts), and an
icon is no use before the list is on screen.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from cellviewer.ui.common.workers import BackgroundRunner
from cellviewer.ui.viewer.class_keys import key_of_event
from cellviewer.ui.viewer.tiles import array_to_qimage

THUMB = 56


def _placeholder() -> QIcon:
    pm = QPixmap(THUMB, THUMB)
    pm.fill(QColor("#505050"))
    return QIcon(pm)


def _read_thumbnail(path) -> object:
    """Runs in a worker: open, shrink, close (a QImage is safe to make off the GUI thread)."""
    from cellviewer.core.sources import open_image

    with open_image(path) as src:
        return array_to_qimage(src.thumbnail(THUMB))


class ImageList(QListWidget):
    imageActivated = Signal(int)  # image id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformItemSizes(True)
        self.setSpacing(1)
        self.runner = BackgroundRunner(1, self)
        self._items: dict[int, QListWidgetItem] = {}
        self._records: dict = {}  # image id -> the ImageRecord shown
        self._thumbs: dict[str, QIcon] = {}  # by path: survives a refresh
        self._placeholder = _placeholder()
        self._unread: list = []  # image paths whose thumbnails wait for the list's paint
        self._read_scheduled = False
        self.currentItemChanged.connect(self._on_current)

    def set_images(self, records) -> None:
        """Show these images (ImageRecord: id, path, width, height, cell_count)."""
        current = self.current_image_id()
        self.blockSignals(True)
        self.clear()
        self._items = {}
        self._records = {int(rec.id): rec for rec in records}
        for rec in records:
            item = QListWidgetItem(self._label(rec))
            item.setData(Qt.ItemDataRole.UserRole, int(rec.id))
            item.setToolTip(str(rec.path))
            key = str(rec.path)
            item.setIcon(self._thumbs.get(key, self._placeholder))
            self.addItem(item)
            self._items[int(rec.id)] = item
            if key not in self._thumbs:
                self._thumbs[key] = self._placeholder
                self._unread.append(rec.path)
        if self._unread:
            self.viewport().update()  # its paint starts the reads
        if current in self._items:
            self.setCurrentItem(self._items[current])
        self.blockSignals(False)

    @staticmethod
    def _label(rec) -> str:
        return f"{rec.path.name}\n{rec.width:,} × {rec.height:,} px · {rec.cell_count:,} cells"

    def update_counts(self, records) -> None:
        for rec in records:
            item = self._items.get(int(rec.id))
            if item is not None:
                item.setText(self._label(rec))
                self._records[int(rec.id)] = rec

    def set_count(self, image_id: int, n: int) -> None:
        """One image's cell count (the open image's, from its cells: no store query)."""
        rec = self._records.get(int(image_id))
        if rec is not None and rec.cell_count != n:
            self.update_counts([dataclasses.replace(rec, cell_count=int(n))])

    def paintEvent(self, e) -> None:  # Qt override
        super().paintEvent(e)
        if self._unread and not self._read_scheduled:
            self._read_scheduled = True
            QTimer.singleShot(0, self._read_thumbnails)

    def _read_thumbnails(self) -> None:
        self._read_scheduled = False
        paths, self._unread = self._unread, []
        for path in paths:
            key = str(path)
            self.runner.submit(lambda p=path: _read_thumbnail(p),
                               lambda img, k=key: self._got_thumbnail(k, img),
                               lambda _msg, k=key: self._no_thumbnail(k))

    def _got_thumbnail(self, key: str, img) -> None:
        icon = QIcon(QPixmap.fromImage(img))
        self._thumbs[key] = icon
        for item in self._items.values():
            if item.toolTip() == key:
                item.setIcon(icon)

    def _no_thumbnail(self, key: str) -> None:
        pm = QPixmap(THUMB, THUMB)
        pm.fill(QColor("#803030"))  # a red square: this image cannot be read
        self._thumbs[key] = QIcon(pm)
        for item in self._items.values():
            if item.toolTip() == key:
                item.setIcon(self._thumbs[key])

    def keyPressEvent(self, e) -> None:
        if key_of_event(e) is not None:
            e.ignore()  # class keys label the selected cells (the window), not a list search
            return
        super().keyPressEvent(e)

    def current_image_id(self) -> int | None:
        item = self.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def set_current_image(self, image_id: int, emit: bool = False) -> None:
        item = self._items.get(int(image_id))
        if item is None:
            return
        self.blockSignals(not emit)
        self.setCurrentItem(item)
        self.blockSignals(False)

    def item_for(self, image_id: int) -> QListWidgetItem | None:
        return self._items.get(int(image_id))

    def _on_current(self, item, _previous) -> None:
        if item is not None:
            self.imageActivated.emit(int(item.data(Qt.ItemDataRole.UserRole)))
