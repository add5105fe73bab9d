"""Editing a region's corners in the real window: the selected region shows corner handles;
dragging one moves that corner as one undoable step (cells untouched), Ctrl+Z takes it back;
a drag that makes the outline cross itself is refused with a message; with the region tool
every region has handles and dragging one does not start a new rectangle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import load_class_set
from cellviewer.core.regions.geometry import from_geojson
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.regions.install import install

IMAGE = demo_dir() / "images" / "12.jpg"  # 640 x 480
POINTS = np.array([[100.0, 100.0], [320.0, 260.0]])  # the second one is outside, at first


@pytest.fixture
def window(qtbot, tmp_path: Path):
    path = tmp_path / "corners.cvproj"
    with ProjectStore.create(path) as store:
        class_ids = add_classes(store, load_class_set()["classes"])
        (image_id,) = add_images(store, [IMAGE])
        store.add_cells(image_id, POINTS, [class_ids[0], class_ids[1]], source="imported")
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 800)
    tool = install(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.open_project(path)
    qtbot.waitUntil(lambda: w.view.handle is not None and len(w.view.layer) == len(POINTS),
                    timeout=10000)
    w.view.centre_on(320, 240, 1.0)
    return w, tool


def _at(w, x: float, y: float) -> QPoint:
    return w.view.image_to_view(x, y).toPoint()


def _drag(qtbot, view, a: QPoint, b: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(view, a + QPoint(6, 6))
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=b)


def _corners(store, uuid) -> list[tuple[float, float]]:
    return sorted(map(tuple, np.asarray(store.region(uuid).geometry["coordinates"][0])[:-1]
                      .round(0).tolist()))


def test_drag_a_corner_then_undo_it(qtbot, window):
    w, tool = window
    view, store = w.view, w.store
    uuid = tool.add_drawn("rectangle", np.array([[50.0, 50.0], [300.0, 250.0]]))
    assert uuid is not None and view.selected_region == uuid
    assert view.handle_regions() == {uuid}
    assert view.corner_at(_at(w, 300, 250)) is not None
    assert view.corner_at(_at(w, 175, 150)) is None  # the middle: no handle
    cells_before = store.cell_arrays(w.session.image_id)
    statuses = [store.cell(str(c)).review_status for c in cells_before.ids]

    qtbot.mouseMove(view, _at(w, 301, 249))
    assert view.cursor().shape() == Qt.CursorShape.SizeAllCursor  # a handle is under it
    qtbot.mouseMove(view, _at(w, 175, 150))
    assert view.cursor().shape() == Qt.CursorShape.ArrowCursor

    _drag(qtbot, view, _at(w, 300, 250), _at(w, 340, 280))
    assert np.allclose(_corners(store, uuid), [(50, 50), (50, 250), (300, 50), (340, 280)],
                       atol=1.5)
    assert w.undo_action.text().startswith("&Undo Move a corner of region")
    assert store.region_history(uuid)[-1].user  # who, and when
    assert store.region_history(uuid)[-1].at
    assert tool.wait_idle()
    moved = [s for s in view.regions if s.uuid == uuid][0]
    assert np.abs(moved.exterior - [340, 280]).sum(axis=1).min() < 3  # the view follows
    after = store.cell_arrays(w.session.image_id)
    assert (after.xy == cells_before.xy).all()
    assert [store.cell(str(c)).review_status for c in after.ids] == statuses

    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _corners(store, uuid) == [(50, 50), (50, 250), (300, 50), (300, 250)]
    assert tool.wait_idle()

    # a corner dragged across the opposite side: the outline would cross itself: refused
    n_ops = len(store.operations(None))
    _drag(qtbot, view, _at(w, 300, 250), _at(w, 20, 150))
    assert "crosses itself" in w.last_error
    assert _corners(store, uuid) == [(50, 50), (50, 250), (300, 50), (300, 250)]
    assert len(store.operations(None)) == n_ops
    area = from_geojson(store.region(uuid).geometry).area
    assert area == pytest.approx(250 * 200)


def test_the_region_tool_shows_every_regions_handles(qtbot, window):
    w, tool = window
    view, store = w.view, w.store
    a = tool.add_drawn("rectangle", np.array([[50.0, 50.0], [200.0, 200.0]]))
    b = tool.add_drawn("rectangle", np.array([[400.0, 100.0], [550.0, 300.0]]))
    view.set_tool("region")
    assert view.handle_regions() == {a, b}
    _drag(qtbot, view, _at(w, 50, 50), _at(w, 30, 20))  # region a's corner
    assert np.allclose(_corners(store, a)[0], (30, 20), atol=1.5)
    assert len(store.regions(w.session.image_id)) == 2  # no new rectangle drawn
    assert view.tool == "region"
