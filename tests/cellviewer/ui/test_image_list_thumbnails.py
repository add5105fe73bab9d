"""The image list reads its thumbnails once it has been painted, not when images are set: at
start-up the reads would otherwise compete with the main window's first paint."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QCoreApplication

from cellviewer.core.store.records import ImageRecord
from cellviewer.ui.viewer.image_list import ImageList


def _record(i: int, path: Path) -> ImageRecord:
    return ImageRecord(i, path, 120, 80, None, None, 0, str(path))


def test_thumbnails_are_read_after_the_list_is_painted(qtbot, tmp_path):
    paths = []
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (120, 80), colour).save(paths[-1])
    paths.append(tmp_path / "broken.png")
    paths[-1].write_bytes(b"not an image")
    listing = ImageList()
    qtbot.addWidget(listing)
    submitted = []
    real_submit = listing.runner.submit
    listing.runner.submit = lambda *a, **k: (submitted.append(a), real_submit(*a, **k))[1]
    listing.set_images([_record(i + 1, p) for i, p in enumerate(paths)])
    placeholder = listing.item_for(1).icon().cacheKey()
    QCoreApplication.processEvents()  # whatever is queued runs; a read would be submitted
    assert submitted == []  # not on screen yet: nothing read
    listing.show()
    qtbot.waitExposed(listing)
    qtbot.waitUntil(lambda: len(submitted) == 3, timeout=5000)

    def arrived() -> bool:
        return all(listing.item_for(i).icon().cacheKey() != placeholder for i in (1, 2, 3))

    qtbot.waitUntil(arrived, timeout=10000)
    listing.set_images([_record(i + 1, p) for i, p in enumerate(paths)])  # known: not again
    listing.repaint()
    QCoreApplication.processEvents()
    assert len(submitted) == 3
