"""File → Import cells… from the menu: the CRC points CSV format (a committed fixture in the
exact columns of crc/points.csv, with synthesized tiles; and the real file when the shared data
is present) into a project that holds its tiles elsewhere; the preview lists the unknown
classes and the images not in the project; the import runs in the background and is undone
as one action; files dropped on the window open the same dialog."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog

from cellviewer.core.io.project_import import add_images
from cellviewer.core.store import ProjectStore
from cellviewer.ui.main_window import MainWindow

FIXTURES = Path(__file__).parents[2] / "fixtures" / "import"
CRC = Path(__file__).parents[4] / "shared" / "data" / "crc"
if not CRC.is_dir():
    CRC = Path("/work/shared/data/crc")


def _tiles(folder: Path, names) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(np.full((500, 500, 3), 60 + k, np.uint8)).save(folder / name)
    return [folder / n for n in names]


def _window(qtbot, project: Path) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1100, 750)
    w.show()
    qtbot.waitExposed(w)
    assert w.open_project(project)
    qtbot.waitUntil(lambda: w.view.handle is not None, timeout=10000)
    return w


def _import_from_menu(qtbot, w: MainWindow, monkeypatch, csv_path: Path):
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(csv_path)], "")))
    action = next(a for a in w.menuBar().actions() if a.text() == "&File")
    item = next(a for a in action.menu().actions() if a.text() == "&Import cells…")
    item.trigger()
    dialog = w.import_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def test_the_crc_format_imports_from_the_menu_into_a_project_holding_its_tiles(
        qtbot, tmp_path, monkeypatch):
    tiles = _tiles(tmp_path / "project-tiles", ["img1.png", "img2.png"])  # img3 is not there
    project = tmp_path / "p.cvproj"
    with ProjectStore.create(project) as store:
        add_images(store, tiles)
    download = tmp_path / "download"
    download.mkdir()
    shutil.copy(FIXTURES / "crc-points.csv", download / "points.csv")
    w = _window(qtbot, project)
    dialog = _import_from_menu(qtbot, w, monkeypatch, download / "points.csv")
    # the preview: the classes the project lacks are listed (to be created), the image it
    # lacks stops the import until the user chooses
    qtbot.waitUntil(lambda: dialog.classes.rowCount() == 4, timeout=10000)
    qtbot.waitUntil(lambda: "img3.png" in dialog.problems.text(), timeout=10000)
    assert not dialog.import_button.isEnabled()
    assert w.store.cell_count() == 0
    dialog.missing.setCurrentIndex(dialog.missing.findData("skip"))
    qtbot.waitUntil(lambda: dialog.import_button.isEnabled(), timeout=10000)
    assert "cells (5) in 2 images" in dialog.summary.text()
    assert "skipped (1)" in dialog.summary.text()
    dialog.import_button.click()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20000)
    qtbot.waitUntil(lambda: w.store.cell_count() == 5, timeout=10000)
    assert [(c.name, c.key) for c in w.store.classes()] == [
        ("fibroblast", "1"), ("epithelial", "2"), ("inflammatory", "3"), ("others", "4")]
    assert w.undo()
    qtbot.waitUntil(lambda: w.store.cell_count() == 0, timeout=10000)


def test_a_table_of_unknown_columns_gets_a_column_mapping_step(qtbot, tmp_path, monkeypatch):
    tiles = _tiles(tmp_path / "tiles", ["s1.png"])
    project = tmp_path / "p.cvproj"
    with ProjectStore.create(project) as store:
        add_images(store, tiles)
    path = tmp_path / "cells.tsv"
    path.write_text("slide\tcx\tcy\ttype\ns1.png\t10\t20\tt\ns1.png\t30\t40\tt\n")
    w = _window(qtbot, project)
    dialog = _import_from_menu(qtbot, w, monkeypatch, path)
    qtbot.waitUntil(lambda: dialog.columns_group.isVisible(), timeout=10000)
    assert dialog.sample.rowCount() == 2
    for role, column in (("image", "slide"), ("x", "cx"), ("y", "cy"), ("label", "type")):
        dialog.column_boxes[role].setCurrentText(column)
    qtbot.waitUntil(lambda: dialog.import_button.isEnabled(), timeout=10000)
    dialog.import_button.click()
    qtbot.waitUntil(lambda: w.store.cell_count() == 2, timeout=20000)


def test_files_dropped_on_the_window_open_the_import_preview(qtbot, tmp_path):
    tiles = _tiles(tmp_path / "tiles", ["img1.png", "img2.png", "img3.png"])
    project = tmp_path / "p.cvproj"
    with ProjectStore.create(project) as store:
        add_images(store, tiles)
    w = _window(qtbot, project)
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(FIXTURES / "crc-points.csv"))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, data,
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    w.dragEnterEvent(enter)  # (Qt delivers drops only during a real drag: call the handlers)
    assert enter.isAccepted()
    w.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data,
                           Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
    assert w.import_dialog is not None and w.import_dialog.isVisible()
    qtbot.waitUntil(lambda: w.import_dialog.import_button.isEnabled(), timeout=10000)
    assert "cells (6) in 3 images" in w.import_dialog.summary.text()
    w.import_dialog.reject()


@pytest.mark.skipif(not (CRC / "points.csv").is_file(), reason="no shared CRC data here")
def test_the_real_crc_points_import_from_the_menu(qtbot, tmp_path, monkeypatch):
    """The shipped file as it is, into a project holding its tiles where they are (nothing is
    copied into the repository or the test folder but the project file)."""
    with open(CRC / "points.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["image"] for r in rows})
    project = tmp_path / "crc.cvproj"
    with ProjectStore.create(project) as store:
        add_images(store, [CRC / "tiles" / n for n in names])
    w = _window(qtbot, project)
    dialog = _import_from_menu(qtbot, w, monkeypatch, CRC / "points.csv")
    qtbot.waitUntil(lambda: dialog.import_button.isEnabled(), timeout=60000)
    dialog.import_button.click()
    qtbot.waitUntil(lambda: w.store.cell_count() == len(rows), timeout=120000)
    assert sorted(c.name for c in w.store.classes()) == sorted({r["class"] for r in rows})
