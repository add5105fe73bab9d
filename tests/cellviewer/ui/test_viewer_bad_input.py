"""Bad input: a broken image, and a file that is not a project, each get a dialog naming the
file and the cause; the window stays up and the open project is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import load_class_set
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir
from cellviewer.ui.main_window import MainWindow

IMAGE = demo_dir() / "images" / "12.jpg"


@pytest.fixture
def window(qtbot, tmp_path: Path):
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        ids = add_classes(store, load_class_set()["classes"])
        (image_id,) = add_images(store, [IMAGE])
        store.add_cells(image_id, [[10, 10], [20, 20]], ids[0])
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.open_project(path)
    qtbot.waitUntil(lambda: w.view.handle is not None and len(w.view.layer) == 2,
                    timeout=10000)
    return w


def _error_box(qtbot, w) -> QMessageBox:
    qtbot.waitUntil(lambda: any(b.isVisible() for b in w.findChildren(QMessageBox)),
                    timeout=10000)
    return next(b for b in w.findChildren(QMessageBox) if b.isVisible())


def _state(store):
    return ([(im.id, str(im.path), im.cell_count) for im in store.images()],
            [(c.id, c.name) for c in store.classes()], store.integrity_check())


@pytest.mark.realdata
def test_a_broken_image_is_refused_with_its_name_and_cause(qtbot, window, shared_data):
    broken = shared_data / "slides" / "openslide-fixtures" / "unopenable.tiff"
    before = _state(window.store)
    window.add_images([str(broken)])
    box = _error_box(qtbot, window)
    assert "unopenable.tiff" in box.text() and "Cannot" in box.text()
    assert box.text().count(":") >= 1  # ...: the cause
    box.close()
    assert _state(window.store) == before
    assert window.isVisible() and window.image_count() == 1


def test_a_file_that_is_not_a_project_keeps_the_open_one(qtbot, window, tmp_path):
    junk = tmp_path / "notes.cvproj"
    junk.write_text("these are not the cells you are looking for\n" * 100)
    store = window.store
    before = _state(store)
    assert not window.open_path(str(junk))
    box = _error_box(qtbot, window)
    assert "notes.cvproj" in box.text() and "not a CellViewer project" in box.text()
    box.close()
    assert window.store is store and _state(store) == before
    assert window.current_image_id() is not None  # still showing its image
    assert junk.read_text().startswith("these are not")  # and the junk file is untouched


def test_a_missing_image_file_is_reported_when_shown(qtbot, tmp_path):
    gone = tmp_path / "gone.jpg"
    gone.write_bytes(IMAGE.read_bytes())
    path = tmp_path / "q.cvproj"
    with ProjectStore.create(path) as store:
        add_images(store, [gone])
    gone.unlink()
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.open_project(path)
    box = _error_box(qtbot, w)
    assert "gone.jpg" in box.text()
    box.close()
    assert w.image_count() == 1
