"""The region workflow in the real window: draw a region, a detector run's proposals (the core
function standing in for the detector), delete some with the keyboard, add a missed cell by
clicking, accept the rest, mark the region annotated (its cells raised) and undo; drawing a
polygon, a self-crossing one refused, Esc cancelling; the panel's counts and its "—" density
on an image without a pixel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import load_class_set
from cellviewer.core.regions import proposals
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.regions.install import install
from cellviewer.ui.regions.panel import NO_DENSITY

IMAGE = demo_dir() / "images" / "12.jpg"  # 640 x 480, no pixel size
POINTS = np.array([[100.0, 100.0], [200.0, 120.0], [500.0, 400.0]])


@pytest.fixture
def window(qtbot, tmp_path: Path):
    path = tmp_path / "regions.cvproj"
    with ProjectStore.create(path) as store:
        class_ids = add_classes(store, load_class_set()["classes"])
        (image_id,) = add_images(store, [IMAGE])
        store.add_cells(image_id, POINTS, [class_ids[0], class_ids[1], class_ids[0]],
                        source="imported")
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


def _id_at(w, x: float, y: float) -> str:
    rows = w.view.layer.query(x - 0.5, y - 0.5, x + 0.5, y + 0.5)
    return str(w.view.layer.ids[rows[0]])


def _drag(qtbot, view, a: QPoint, b: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(view, a + QPoint(10, 10))
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=b)


def test_draw_propose_delete_add_accept_mark_and_undo(qtbot, window):
    w, tool = window
    view, store = w.view, w.store
    image = w.session.image_id
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert view.tool == "region" and w.region_mode_action.isChecked()
    _drag(qtbot, view, _at(w, 50, 50), _at(w, 400, 300))
    regions = store.regions(image)
    assert len(regions) == 1 and view.tool == "select"
    region = regions[0]
    ring = np.array(region.geometry["coordinates"][0])
    assert ring.min(axis=0) == pytest.approx([50, 50], abs=1.5)
    assert ring.max(axis=0) == pytest.approx([400, 300], abs=1.5)
    assert [s.uuid for s in view.regions] == [region.uuid]

    # a detector run (the core function stands in for it): one near an existing marker
    found = proposals.add_detections(store, image, [[101, 101], [150, 150], [250, 200],
                                                    [300, 250], [350, 100], [600, 450]],
                                     [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], method="test")
    assert found.n_added == 5
    qtbot.waitUntil(lambda: int(view.layer.proposed.sum()) == 5, timeout=5000)
    assert tool.wait_idle()
    assert tool.panel.current().n_proposed == 4 and tool.panel.current().n_cells == 2

    # delete two with the keyboard (click, shift-click, Delete)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_at(w, 150, 150))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     pos=_at(w, 250, 200))
    assert len(w.selected_cell_ids()) == 2
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert store.cell_count(image) == 3 + 5 - 2
    # add a missed cell by clicking in add mode
    qtbot.keyClick(view, Qt.Key.Key_A)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_at(w, 200, 250))
    (added,) = w.selected_cell_ids()  # (the new cell is selected)
    qtbot.keyClick(view, Qt.Key.Key_A)  # back to selecting
    assert store.cell(added).label_source == "manual" and not store.cell(added).proposed

    # accept the rest of the region's proposals, then mark it annotated
    assert tool.wait_idle()
    qtbot.mouseClick(tool.panel.accept_region_button, Qt.MouseButton.LeftButton)
    assert int(view.layer.proposed.sum()) == 1  # the one outside the region waits
    assert tool.wait_idle()
    qtbot.mouseClick(tool.panel.status_buttons["annotated"], Qt.MouseButton.LeftButton)
    assert store.region(region.uuid).status == "annotated"
    inside = [_id_at(w, 100, 100), _id_at(w, 200, 120), _id_at(w, 300, 250),
              _id_at(w, 350, 100), added]
    assert [store.cell(c).review_status for c in inside] == ["annotated"] * 5
    assert store.cell(_id_at(w, 500, 400)).review_status == "unreviewed"  # outside
    assert store.cell(_id_at(w, 300, 250)).label_source == "detector"  # its origin kept
    assert tool.wait_idle()
    assert tool.panel.current().n_cells == 5 and tool.panel.current().n_proposed == 0

    # one undo takes back the region's status and its cells' together
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert store.region(region.uuid).status == "unreviewed"
    assert [store.cell(c).review_status for c in inside] == ["unreviewed"] * 5
    assert store.cell(_id_at(w, 300, 250)).proposed is False  # the accept stays


def test_polygons_by_clicks_a_self_crossing_one_refused_and_esc_cancels(qtbot, window):
    w, tool = window
    view, store = w.view, w.store
    image = w.session.image_id
    before = store.cell_arrays(image)
    view.set_tool("region")
    for x, y in [(60, 60), (300, 60), (300, 300)]:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_at(w, x, y))
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=_at(w, 60, 300))
    (region,) = store.regions(image)
    assert len(region.geometry["coordinates"][0]) == 5  # 4 corners, closed
    # a bow tie: refused with a message, nothing added
    view.set_tool("region")
    for x, y in [(400, 50), (600, 300), (600, 50), (400, 300)]:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_at(w, x, y))
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert "crosses itself" in w.last_error
    assert len(store.regions(image)) == 1
    # Esc drops a polygon being drawn
    view.set_tool("region")
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_at(w, 450, 100))
    assert view.drawing.active
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert not view.drawing.active and len(store.regions(image)) == 1
    after = store.cell_arrays(image)
    assert list(after.ids) == list(before.ids) and (after.xy == before.xy).all()


def test_the_panel_shows_counts_proportions_and_no_density_without_a_pixel_size(qtbot,
                                                                                window):
    w, tool = window
    view, store = w.view, w.store
    image = w.session.image_id
    view.set_tool("region")
    _drag(qtbot, view, _at(w, 20, 20), _at(w, 260, 200))  # the first two cells
    view.set_tool("region")
    _drag(qtbot, view, _at(w, 420, 300), _at(w, 480, 360))  # an empty one
    assert tool.wait_idle()
    panel = tool.panel
    assert panel.table.rowCount() == 2
    assert [panel.table.item(r, 3).text() for r in range(2)] == ["2", "0"]
    assert panel.table.item(0, 5).text() == NO_DENSITY
    assert "no pixel size" in panel.table.item(0, 5).toolTip()
    panel.choose(store.regions(image)[0].uuid)
    assert panel.classes.rowCount() == 2
    assert {panel.classes.item(r, 2).text() for r in range(2)} == {"50.0 %"}
    assert "no pixel size" in panel.note.text()
    tool.rename("tumour nest")
    assert tool.wait_idle()
    assert panel.table.item(0, 0).text() == "tumour nest"
    empty = store.regions(image)[1].uuid
    assert tool.set_status("annotated", empty) == 0  # no cells: the region alone
    assert store.region(empty).status == "annotated"
    tool.delete(empty)
    assert tool.wait_idle()
    assert panel.table.rowCount() == 1 and len(view.regions) == 1
    assert store.cell_count(image) == len(POINTS)
