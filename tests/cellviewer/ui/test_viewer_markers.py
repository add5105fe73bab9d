"""Markers: the grid index answers like a brute-force scan; colours follow the mode; drawing is
batched and bounded by the screen, not the cell count."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter

from cellviewer.core.cells import editing
from cellviewer.core.project.session import ProjectSession
from cellviewer.core.store import ProjectStore
from cellviewer.ui.viewer.markers import (
    AGREE_COLOUR,
    DISAGREE_COLOUR,
    ClassStyle,
    MarkerLayer,
    paint_markers,
)

CLASSES = [ClassStyle(5, "a", "#ff0000", "1"), ClassStyle(9, "b", "#0000ff", "2")]


def _layer(n=2000, w=5000, h=3000, seed=0) -> MarkerLayer:
    rng = np.random.default_rng(seed)
    layer = MarkerLayer()
    layer.set_classes(CLASSES)
    layer.set_cells([f"c{i}" for i in range(n)], rng.random((n, 2)) * (w, h),
                    rng.choice([5, 9, -1], n), w, h)
    return layer


def test_hidden_classes_are_not_queried_nor_hit():
    layer = _layer()
    layer.set_hidden({5})
    rows = layer.query(0, 0, 5000, 3000)
    assert len(rows) == np.count_nonzero(layer.class_id != 5)
    r = int(np.flatnonzero(layer.class_id == 5)[0])
    x, y = layer.xy[r]
    hit = layer.nearest(x, y, 0.5)
    assert hit != r


def test_colour_modes():
    layer = MarkerLayer()
    layer.set_classes(CLASSES)
    layer.set_cells(["a", "b", "c", "d"], [[0, 0], [1, 1], [2, 2], [3, 3]], [5, 9, -1, 5], 10, 10)
    pal = layer.palette()
    assert [pal[k].name() for k in layer.colour_keys()] == ["#ff0000", "#0000ff", "#ffffff",
                                                             "#ff0000"]
    layer.cells.set_predictions(["a", "b", "d"], [5, 5, -1], [0.9, 0.6, np.nan], None)
    layer.set_mode("prediction")
    pal = layer.palette()
    assert [pal[k].name() for k in layer.colour_keys()] == ["#ff0000", "#ff0000", "#9e9e9e",
                                                             "#9e9e9e"]
    layer.set_mode("agreement")
    pal = layer.palette()
    names = [pal[k].name() for k in layer.colour_keys()]
    assert names == [AGREE_COLOUR, DISAGREE_COLOUR, "#9e9e9e", "#9e9e9e"]


def test_the_layer_follows_every_edit_of_the_project(tmp_path):
    """Markers are a view of the session's cells: edits through the store (any panel) reach
    rows, index and colours without the layer being told."""
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        a = store.add_class("a", "#ff0000")
        image = store.add_image("x.png", 5000, 3000)
        rng = np.random.default_rng(0)
        store.add_cells(image, rng.random((100, 2)) * (5000, 3000))
    session = ProjectSession()
    session.open(tmp_path / "p.cvproj")
    session.set_image(image)
    session.load_now()
    layer = MarkerLayer(session.cells)
    layer.set_extent(5000, 3000)
    layer.set_classes([ClassStyle(a, "a", "#ff0000")])
    changes = []
    layer.on_change = lambda: changes.append(layer.version)
    new = editing.add(session, [[4999.0, 2999.0]], a).ids[0]
    assert layer.rows_of([new])[0] == 100
    assert 100 in layer.query(4990, 2990, 5000, 3000)
    editing.move(session, new, 10.0, 10.0)
    assert 100 in layer.query(0, 0, 20, 20)
    first_two = [str(i) for i in layer.ids[:2]]
    editing.delete(session, first_two)
    assert len(layer) == 99 and layer.rows_of([new])[0] == 98
    assert layer.rows_of(first_two)[0] == -1
    editing.label(session, [new], None)
    assert layer.class_id[98] == -1
    assert layer.palette()[layer.colour_keys()[98]].name() == "#ffffff"
    assert len(changes) >= 4
    session.close()


def _render(layer, rows, zoom, size=12):
    img = QImage(400, 300, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    n = paint_markers(p, layer, rows, zoom, 0, 0, "dot", size)
    p.end()
    return img, n


def test_markers_land_on_their_cells_in_their_colours(qapp):
    layer = MarkerLayer()
    layer.set_classes(CLASSES)
    layer.set_cells(["a", "b"], [[50.0, 40.0], [150.0, 100.0]], [5, 9], 400, 300)
    img, n = _render(layer, np.arange(2), zoom=2.0)
    assert n == 2
    assert img.pixelColor(100, 80) == QColor("#ff0000")  # (50, 40) at zoom 2
    assert img.pixelColor(300, 200) == QColor("#0000ff")
    assert img.pixelColor(200, 150).alpha() == 0


def test_a_crowd_becomes_a_class_map_bounded_by_the_screen(qapp):
    layer = _layer(n=200_000, w=4000, h=3000)
    img, n = _render(layer, layer.query(0, 0, 4000, 3000), zoom=0.1, size=12)
    # 400 x 300 px in 6-px squares: one mark per square, every square of the slide filled
    assert 0.98 * 67 * 50 <= n <= 67 * 51
    colours = {img.pixelColor(x, y).rgb() & 0xFFFFFF for x in range(3, 397, 7)
               for y in range(3, 297, 7)}
    assert colours == {0xFF0000, 0x0000FF, 0xFFFFFF}  # the two classes and the unlabelled


def test_a_moderate_crowd_keeps_one_sprite_per_bucket_and_class(qapp):
    layer = _layer(n=30_000, w=4000, h=3000)
    _, n = _render(layer, layer.query(0, 0, 4000, 3000), zoom=0.5, size=6)
    # 30,000 markers of 6 px on 2000 x 1500 px cover it once: sprites, one per 3-px bucket and
    # colour at most, far fewer than the cells where they collide
    assert n <= 30_000
    assert n > 20_000
