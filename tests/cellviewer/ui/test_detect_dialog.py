"""Analyze → Detect cells… on the real SVS: the classical detector runs on a drawn region in
the background, its detections come in as proposals (one undoable step, all inside the
region, none near an existing marker); the review: delete some, add a missed one, accept the
rest, mark the region annotated, undo; a cancelled run asks whether to keep what it found."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import load_class_set
from cellviewer.core.regions.geometry import from_geojson, inside
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir
from cellviewer.ui.main_window import MainWindow

SLIDE = demo_dir() / "slides" / "CMU-1-Small-Region.svs"
WAIT_MS = 120_000
BOX = (900.0, 1300.0, 1250.0, 1600.0)  # tissue with many nuclei (level-0 px)
EXISTING = (1000.0, 1400.0)  # a marker already there: no proposal next to it


@pytest.fixture
def window(qtbot, tmp_path: Path):
    path = tmp_path / "slide.cvproj"
    with ProjectStore.create(path) as store:
        class_ids = add_classes(store, load_class_set("crc-cd103-cd8.json")["classes"])
        (image_id,) = add_images(store, [SLIDE])
        store.add_cells(image_id, [EXISTING], [class_ids[0]], source="manual")
    w = MainWindow()
    qtbot.addWidget(w)
    w.install_tools()
    w.resize(1366, 768)
    w.show()
    assert w.open_project(path)
    qtbot.waitUntil(lambda: w.view.handle is not None and len(w.session.cells) == 1,
                    timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)
    return w


def _cells(store, image_id: int) -> list:
    return [store.cell(i) for i in store.cell_table([image_id])["ids"]]


def _run(qtbot, dialog) -> None:
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=WAIT_MS)


def test_detect_in_a_region_then_review_the_proposals_and_undo(qtbot, window):
    w = window
    tool, store, image = w.regions_tool, w.store, w.session.image_id
    x0, y0, x1, y1 = BOX
    uuid = tool.add_drawn("rectangle", np.array([[x0, y0], [x1, y1]]))
    assert uuid is not None
    assert tool.wait_idle(WAIT_MS)
    tool.panel.choose(uuid)
    assert tool.panel.current_uuid() == uuid
    dialog = tool.open_detection()
    assert dialog.mpp and dialog.unit_label.text() == "µm"  # the slide knows its pixel size
    dialog.where.setCurrentIndex(dialog.where.findData("region"))
    dialog.mode.setCurrentIndex(dialog.mode.findData("nucleus"))
    _run(qtbot, dialog)
    assert "proposal" in dialog.result_message, dialog.status.text()
    qtbot.waitUntil(lambda: len(w.session.cells) > 20, timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)

    proposed = [c for c in _cells(store, image) if c.proposed]
    assert len(proposed) >= 20 and all(c.label_source == "detector" for c in proposed)
    xy = np.array([[c.x, c.y] for c in proposed])
    poly = from_geojson(store.region(uuid).geometry)
    assert inside(poly, xy).all()
    assert (np.hypot(*(xy - EXISTING).T) >= 4.0).all()  # none on the existing marker
    assert w.undo_action.text().startswith("&Undo Detect")

    # review: delete two, add a missed cell, accept the rest, mark the region annotated
    w.select_cells([proposed[0].id, proposed[1].id])
    assert w.delete_selection() == 2
    added = w.add_cell(x0 + 5, y0 + 5)
    assert added is not None
    assert tool.accept_in_region(uuid) == len(proposed) - 2
    assert not [c for c in _cells(store, image) if c.proposed]
    tool.set_status("annotated", uuid)
    inside_cells = [c for c in _cells(store, image)
                    if inside(poly, np.array([[c.x, c.y]]))[0]]
    assert inside_cells and all(c.review_status == "annotated" for c in inside_cells)
    accepted = store.cell(proposed[2].id)
    assert accepted.label_source == "detector" and accepted.score is not None  # origin kept

    for _ in range(4):  # status, accept, add, delete
        assert w.undo()
        assert w.wait_idle(WAIT_MS)
    assert len([c for c in _cells(store, image) if c.proposed]) == len(proposed)
    assert w.undo()  # the detection run: one step
    qtbot.waitUntil(lambda: len(w.session.cells) == 1, timeout=WAIT_MS)
    dialog.close()


@pytest.mark.parametrize("keep", [True, False])
def test_a_cancelled_run_keeps_its_finds_or_drops_them(qtbot, window, monkeypatch, keep):
    w = window
    dialog = w.regions_tool.open_detection()
    dialog.where.setCurrentIndex(dialog.where.findData("image"))
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or (
        QMessageBox.StandardButton.Yes if keep else QMessageBox.StandardButton.No))
    # cancel after the first tile (the slide has several at this tile size)
    monkeypatch.setattr(type(dialog), "_on_progress", lambda self, p: (
        self.task.state.request_interruption() if p.tiles_done >= 1 else None))
    original = dialog.params
    monkeypatch.setattr(dialog, "params",
                        lambda: dataclasses.replace(original(), tile_size=256))
    _run(qtbot, dialog)
    assert asked and "cancelled after" in asked[0]
    assert w.wait_idle(WAIT_MS)
    n = len([c for c in _cells(w.store, w.session.image_id) if c.proposed])
    if keep:
        assert n > 0 and w.undo_action.text().startswith("&Undo Detect")
    else:
        assert n == 0 and "nothing was added" in dialog.status.text()
    dialog.close()
