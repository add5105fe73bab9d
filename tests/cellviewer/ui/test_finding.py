"""Finding things: the image-list filter, Go to… (cell id, px, µm), select by class/status."""

from __future__ import annotations

import numpy as np
import pytest
from demo_window import open_demo_window

from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.viewer.goto import GoTarget, cells_matching, match_cell_id, parse_goto


def _demo(qtbot) -> MainWindow:
    return open_demo_window(qtbot, (1200, 800))


def test_parse_goto():
    assert parse_goto("1200, 850") == GoTarget(x=1200, y=850)
    assert parse_goto("x 1,200 y 850 px") == GoTarget(x=1200, y=850)
    assert parse_goto("(300.5, 212) µm") == GoTarget(x=300.5, y=212, unit="um")
    assert parse_goto("300.5um 212um") == GoTarget(x=300.5, y=212, unit="um")
    assert parse_goto("3f2a9c10-aaaa") == GoTarget(cell_id="3f2a9c10-aaaa")
    with pytest.raises(ValueError, match="cell id"):
        parse_goto("")
    with pytest.raises(ValueError, match="neither"):
        parse_goto("12 apples, 3")


def test_match_cell_id_and_cells_matching():
    ids = ["abcdef12-1", "abcdef99-2", "0123456789"]
    assert match_cell_id(ids, "ABCDEF12-1") == "abcdef12-1"
    assert match_cell_id(ids, "abcdef9") == "abcdef99-2"
    assert match_cell_id(ids, "abcdef") is None  # two cells start so: not a unique match
    assert match_cell_id(ids, "012") is None  # too short to be a prefix
    cls = np.array([1, 2, -1, 1])
    review = np.array([0, 3, 0, 3])
    assert cells_matching(cls, review, 1, None).tolist() == [0, 3]
    assert cells_matching(cls, review, 1, "reviewed").tolist() == [3]
    assert cells_matching(cls, review, -1, None).tolist() == [2]
    assert cells_matching(cls, review, None, None).tolist() == [0, 1, 2, 3]


def test_image_filter_hides_the_others(qtbot):
    w = _demo(qtbot)
    images = w.image_list
    n = images.count()
    w.image_filter.setText("12.jpg")
    shown = [images.item(r).text().split("\n")[0] for r in range(n)
             if not images.item(r).isHidden()]
    assert shown and all("12" in s for s in shown) and len(shown) < n
    w.image_filter.clear()
    assert not any(images.item(r).isHidden() for r in range(n))


def test_go_to_a_cell_id_of_another_image(qtbot):
    w = _demo(qtbot)
    other = w.store.images()[3]
    cell_id = str(w.store.image_columns(other.id, None).ids[0])
    w.find_actions["goto"].trigger()
    dialog = w.goto_dialog
    dialog.edit.setText(cell_id)
    assert dialog.go()
    assert w.current_image_id() == other.id
    qtbot.waitUntil(lambda: w.selected_cell_ids() == [cell_id], timeout=10_000)


def test_go_to_a_position_and_why_not(qtbot):
    w = _demo(qtbot)
    w.find_actions["goto"].trigger()
    dialog = w.goto_dialog
    dialog.edit.setText("100, 120")
    assert dialog.go()
    x0, y0, x1, y1 = w.view.visible_image_rect()
    assert abs((x0 + x1) / 2 - 100) < 60 and abs((y0 + y1) / 2 - 120) < 60 or \
        (x0 <= 100 <= x1 and y0 <= 120 <= y1)
    w.find_actions["goto"].trigger()
    dialog = w.goto_dialog
    dialog.edit.setText("5, 5 µm")
    if not w.current_image_source().mpp:
        assert not dialog.go()
        assert "pixel size is not known" in dialog.message.text()
    dialog.edit.setText("99999, 5")
    assert not dialog.go()
    assert "outside the image" in dialog.message.text()


def test_select_by_class_and_status(qtbot):
    w = _demo(qtbot)
    cells = w.session.cells
    normal = next(c for c in w._classes if c.name == "normal")
    want = sorted(str(i) for i in cells.ids[cells.class_id == normal.id])
    assert want
    w.find_actions["select"].trigger()
    dialog = w.select_dialog
    dialog.class_combo.setCurrentIndex(dialog.class_combo.findData(normal.id))
    assert str(len(want)) in dialog.count.text()
    assert dialog.select() == len(want)
    assert sorted(w.selected_cell_ids()) == want
