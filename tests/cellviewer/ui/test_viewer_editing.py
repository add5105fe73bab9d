"""Driving the real main window on a real project: select by clicking a marker, relabel with a
number key, undo, add with ctrl-click and drag to move, rubber-band and relabel, and check the
store (labels and history, with the user's name) afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import load_class_set
from cellviewer.core.store import ProjectStore
from cellviewer.paths import demo_dir
from cellviewer.ui.main_window import MainWindow

IMAGE = demo_dir() / "images" / "12.jpg"  # 640 x 480
POINTS = np.array([[100.0, 100.0], [200.0, 100.0], [300.0, 100.0], [100.0, 300.0],
                   [500.0, 400.0]])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "edit.cvproj"
    with ProjectStore.create(path) as store:
        class_ids = add_classes(store, load_class_set()["classes"])
        (image_id,) = add_images(store, [IMAGE])
        store.add_cells(image_id, POINTS, [class_ids[0]] * len(POINTS), source="imported")
    return path


@pytest.fixture
def window(qtbot, project):
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    assert w.open_project(project)
    qtbot.waitUntil(lambda: w.view.handle is not None and len(w.view.layer) == len(POINTS),
                    timeout=10000)
    return w


def _screen(w: MainWindow, x: float, y: float) -> QPoint:
    return w.view.image_to_view(x, y).toPoint()


def _id_at(w: MainWindow, x: float, y: float) -> str:
    rows = w.view.layer.query(x - 0.5, y - 0.5, x + 0.5, y + 0.5)
    return str(w.view.layer.ids[rows[0]])


def _class(store, name: str) -> int:
    return store.class_id(name)


def test_click_selects_key_relabels_and_ctrl_z_undoes(qtbot, window):
    w, view = window, window.view
    target = _id_at(w, 200, 100)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_screen(w, 203, 98))  # near enough
    assert w.selected_cell_ids() == [target]
    # a click on empty tissue clears it, a click back selects again
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_screen(w, 400, 250))
    assert w.selected_cell_ids() == []
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_screen(w, 200, 100))
    assert w.selected_cell_ids() == [target]

    changed = []
    w.cellsChanged.connect(lambda: changed.append(1))
    qtbot.keyClick(view, Qt.Key.Key_3)  # "3" is microcyte in the Chula RBC-12 set
    store = w.store
    microcyte = _class(store, "microcyte")
    assert store.cell(target).class_id == microcyte
    assert store.cell(target).label_source == "manual"
    assert store.cell(target).updated_by == "test-user"
    last = store.history(target)[-1]
    assert (last.action, last.old_class, last.new_class, last.user) == \
        ("label", "normal", "microcyte", "test-user")
    assert changed
    row = w.view.layer.rows_of([target])[0]
    assert w.view.layer.class_id[row] == microcyte  # the marker follows without a reload

    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert store.cell(target).class_id == _class(store, "normal")
    row = w.view.layer.rows_of([target])[0]
    assert w.view.layer.class_id[row] == _class(store, "normal")
    assert store.history(target)[-1].action == "undo"
    assert store.history(target)[-1].user == "test-user"
    # and redo puts it back
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier |
                   Qt.KeyboardModifier.ShiftModifier)
    assert store.cell(target).class_id == microcyte


def test_ctrl_click_adds_and_drag_moves(qtbot, window):
    w, view = window, window.view
    store = w.store
    teardrop = _class(store, "teardrop")
    w.class_panel.set_current_class(teardrop)
    before = store.cell_count()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     _screen(w, 450, 200))
    assert store.cell_count() == before + 1
    (new_id,) = w.selected_cell_ids()
    cell = store.cell(new_id)
    assert cell.class_id == teardrop and cell.label_source == "manual"
    assert abs(cell.x - 450) < 1.5 and abs(cell.y - 200) < 1.5
    assert len(w.view.layer) == len(POINTS) + 1

    # drag it 40 image pixels to the right and 20 down
    start, end = _screen(w, cell.x, cell.y), _screen(w, cell.x + 40, cell.y + 20)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    for t in np.linspace(0, 1, 6)[1:]:
        p = start + (end - start) * t
        qtbot.mouseMove(view, QPoint(round(p.x()), round(p.y())))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)
    moved = store.cell(new_id)
    assert abs(moved.x - (cell.x + 40)) < 1.5 and abs(moved.y - (cell.y + 20)) < 1.5
    assert store.history(new_id)[-1].action == "move"
    row = w.view.layer.rows_of([new_id])[0]
    assert np.allclose(w.view.layer.xy[row], (moved.x, moved.y))
    # a plain drag on empty space pans, and moves no cell
    xy_before = store.cell_arrays(w.current_image_id()).xy.copy()
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=_screen(w, 400, 300))
    qtbot.mouseMove(view, _screen(w, 400, 300) + QPoint(30, 30))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=_screen(w, 400, 300) + QPoint(30, 30))
    assert np.array_equal(store.cell_arrays(w.current_image_id()).xy, xy_before)
    # Delete removes the selection; undo brings it back with its id
    w.select_cells([new_id])
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert store.cell_count() == before
    w.undo()
    assert store.cell(new_id).class_id == teardrop


def test_rubber_band_selects_several_and_a_key_relabels_them(qtbot, window):
    w, view = window, window.view
    store = w.store
    inside = {_id_at(w, *p) for p in POINTS[:3]}  # the three cells on the row y = 100
    a, b = _screen(w, 60, 60), _screen(w, 340, 140)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, a)
    qtbot.mouseMove(view, (a + b) / 2)
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, b)
    assert set(w.selected_cell_ids()) == inside
    # shift-click adds a fourth
    fourth = _id_at(w, 500, 400)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     _screen(w, 500, 400))
    assert set(w.selected_cell_ids()) == inside | {fourth}
    qtbot.keyClick(view, Qt.Key.Key_2)  # macrocyte
    macrocyte = _class(store, "macrocyte")
    for cid in inside | {fourth}:
        assert store.cell(cid).class_id == macrocyte
        assert store.history(cid)[-1].user == "test-user"
    ops = {store.history(cid)[-1].op_id for cid in inside | {fourth}}
    assert len(ops) == 1  # one undoable action for the four
    assert store.cell(_id_at(w, 100, 300)).class_id == _class(store, "normal")
    w.undo()
    assert all(store.cell(cid).class_id == _class(store, "normal") for cid in inside)


def test_gallery_click_centres_the_view_on_that_cell(qtbot, window):
    w = window
    w.gallery_panel.set_filter("all")
    gallery = w.gallery
    assert gallery.count() == len(POINTS)
    qtbot.waitUntil(lambda: all(gallery.has_patch(i) for i in range(len(POINTS))),
                    timeout=10000)
    k = 4
    cid = gallery.ids()[k]
    qtbot.mouseClick(gallery.viewport(), Qt.MouseButton.LeftButton,
                     pos=gallery.item_rect(k).center())
    assert w.selected_cell_ids() == [cid]
    cell = w.store.cell(cid)
    centre = w.view.rect().center()
    x, y = w.view.view_to_image(centre)
    assert abs(x - cell.x) <= 1.5 and abs(y - cell.y) <= 1.5
    # the gallery's selection and the view's are one: a key relabels it
    qtbot.keyClick(gallery, Qt.Key.Key_4)
    assert w.store.cell(cid).class_id == _class(w.store, "spherocyte")
    qtbot.waitUntil(lambda: gallery.class_ids()[k] == _class(w.store, "spherocyte"),
                    timeout=3000)  # redrawn in the event loop's next turn


def test_another_panel_s_edit_reaches_the_markers(qtbot, window):
    """A panel that labels through the store (the review queue) needs no call into us."""
    w = window
    target = _id_at(w, 100, 300)
    w.store.set_labels([target], _class(w.store, "ovalocyte"), source="corrected")
    row = w.view.layer.rows_of([target])[0]
    qtbot.waitUntil(lambda: w.view.layer.class_id[w.view.layer.rows_of([target])[0]] ==
                    _class(w.store, "ovalocyte"), timeout=3000)
    assert row >= 0


def test_a_large_image_loads_its_cells_in_a_worker(qtbot, tmp_path, monkeypatch):
    """Its cells and their spatial index are made in a worker: no paint nor listener of the
    cells' arrival rebuilds the index on the GUI thread (it did, when the image's tiles opened
    after the cells came: 30-60 ms for 100,000 cells)."""
    import threading

    from cellviewer.core.cells import spatial
    from cellviewer.ui import main_window as main_window_module
    from cellviewer.ui.main_window import SYNC_CELLS_BELOW
    from cellviewer.ui.viewer import markers

    built_on = []

    class CountedIndex(spatial.GridIndex):
        def __init__(self, *args, **kwargs) -> None:
            built_on.append(threading.current_thread() is threading.main_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(markers, "GridIndex", CountedIndex)
    monkeypatch.setattr(main_window_module, "GridIndex", CountedIndex)
    # the image opens only after its cells came (a big slide's first tile can take longer)
    cells_came = threading.Event()
    open_checked = main_window_module._open_checked

    def open_after_the_cells(record):
        cells_came.wait(30)
        return open_checked(record)

    monkeypatch.setattr(main_window_module, "_open_checked", open_after_the_cells)

    n = SYNC_CELLS_BELOW + 5000
    path = tmp_path / "big.cvproj"
    rng = np.random.default_rng(3)
    with ProjectStore.create(path) as store:
        ids = add_classes(store, load_class_set()["classes"])
        (image_id,) = add_images(store, [IMAGE])
        store.add_cells(image_id, rng.random((n, 2)) * (640, 480), rng.choice(ids, n))
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    w.session.cells.events.reset.connect(
        lambda *_: len(w.session.cells) == n and cells_came.set())
    assert w.open_project(path)
    qtbot.waitUntil(lambda: len(w.view.layer) == n, timeout=30000)
    qtbot.waitUntil(lambda: w.view.handle is not None, timeout=30000)
    assert any(m.startswith(f"Loading {n:,} cells") for m in messages)
    w.view.grab()  # a paint of every marker: queries the index
    qtbot.waitUntil(lambda: bool(built_on), timeout=30000)
    w.view.grab()
    assert built_on and not any(built_on), built_on  # built, and only in the worker
    # and editing works on it as on a small one
    target = str(w.view.layer.ids[123])
    w.select_cells([target])
    qtbot.keyClick(w.view, Qt.Key.Key_5)
    assert w.store.cell(target).class_id == w.store.class_id("target cell")


def test_class_keys_work_with_the_image_list_focused(qtbot, window):
    w = window
    target = _id_at(w, 300, 100)
    w.select_cells([target])
    w.image_list.setFocus()
    qtbot.keyClick(w.image_list, Qt.Key.Key_6)
    assert w.store.cell(target).class_id == w.store.class_id("stomatocyte")


def test_add_mode_adds_on_plain_clicks_until_escape(qtbot, window):
    w, view = window, window.view
    before = w.store.cell_count()
    qtbot.keyClick(view, Qt.Key.Key_A)
    assert view.tool == "add" and w.add_mode_action.isChecked()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_screen(w, 600, 50))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_screen(w, 620, 60))
    assert w.store.cell_count() == before + 2
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert view.tool == "select" and not w.add_mode_action.isChecked()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_screen(w, 600, 450))
    assert w.store.cell_count() == before + 2
