"""The patch gallery: crisp magnified crops, selection by mouse and keys, and virtualisation
(100,000 cells: only what is on screen is asked for)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from cellviewer.ui.viewer.gallery import PatchGallery
from cellviewer.ui.viewer.markers import ClassStyle

CLASSES = [ClassStyle(1, "tumour", "#ff0000", "1"), ClassStyle(2, "stroma", "#00ff00", "2")]


@pytest.fixture
def gallery(qtbot):
    g = PatchGallery()
    qtbot.addWidget(g)
    g.resize(500, 400)
    g.set_classes(CLASSES)
    g.show()
    qtbot.waitExposed(g)
    return g


def test_crops_are_drawn_magnified_with_crisp_pixels(qtbot, gallery):
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)
    gallery.set_magnification(3)
    gallery.set_items([f"c{i}" for i in range(12)], [1, 2] * 6, patches)
    shot = gallery.viewport().grab().toImage()
    k = 5
    r = gallery.item_rect(k)
    assert r.width() == 120
    for py, px in [(0, 0), (17, 3), (39, 39), (20, 31)]:
        for dy, dx in [(0, 0), (1, 2), (2, 1)]:  # every screen pixel of the 3x3 block
            c = shot.pixelColor(r.left() + 3 * px + dx, r.top() + 3 * py + dy)
            assert (c.red(), c.green(), c.blue()) == tuple(patches[k, py, px])


def test_click_ctrl_and_shift_select(qtbot, gallery):
    gallery.set_items([f"c{i}" for i in range(30)], np.ones(30, dtype=np.int64))
    activated, selections = [], []
    gallery.cellActivated.connect(activated.append)
    gallery.selectionChanged.connect(selections.append)
    vp = gallery.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=gallery.item_rect(2).center())
    assert activated == ["c2"] and gallery.selected_ids() == ["c2"]
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     gallery.item_rect(5).center())
    assert gallery.selected_ids() == ["c2", "c3", "c4", "c5"]
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     gallery.item_rect(3).center())
    assert gallery.selected_ids() == ["c2", "c4", "c5"]
    assert selections[-1] == ["c2", "c4", "c5"]
    assert activated == ["c2"]  # only a plain click jumps the slide
    qtbot.keyClick(gallery, Qt.Key.Key_Right)
    assert gallery.selected_ids() == ["c4"] and activated[-1] == "c4"
    # a click between crops hits nothing
    r = gallery.item_rect(0)
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=QPoint(r.right() + 4, r.center().y()))
    assert gallery.selected_ids() == ["c4"]


def test_hundred_thousand_cells_ask_only_for_what_is_on_screen(qtbot, gallery):
    n = 100_000
    asked = []
    gallery.patchesNeeded.connect(lambda idx: asked.append(np.asarray(idx)))
    gallery.set_items([f"c{i}" for i in range(n)], np.full(n, 2))
    gallery.viewport().repaint()
    qtbot.waitUntil(lambda: bool(asked), timeout=3000)
    first, last = gallery.visible_range()
    on_screen = last - first
    got = np.concatenate(asked)
    assert 0 < len(got) <= 2 * on_screen + gallery.columns()
    assert got.min() == 0
    # feed them; then jump to the end: the new request is for the end only
    gallery.set_patches(got, np.zeros((len(got), 40, 40, 3), np.uint8))
    asked.clear()
    gallery.verticalScrollBar().setValue(gallery.verticalScrollBar().maximum())
    gallery.viewport().repaint()
    qtbot.waitUntil(lambda: bool(asked), timeout=3000)
    tail = np.concatenate(asked)
    assert tail.min() >= n - 2 * on_screen - gallery.columns() and tail.max() == n - 1
    # the ids of the last row are the last cells
    assert gallery.index_at(gallery.item_rect(n - 1).center()) == n - 1


def test_relabel_updates_the_caption_colour_without_a_reset(qtbot, gallery):
    gallery.set_items(["a", "b"], [1, 1])
    gallery.select_ids(["b"])
    gallery.update_labels(["b"], [2])
    assert list(gallery.class_ids()) == [1, 2]
    assert gallery.selected_ids() == ["b"]
