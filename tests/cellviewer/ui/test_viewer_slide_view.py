"""The slide view on a real pyramidal slide: tiles arrive in the background, the screen shows
the right pixels at 1:1, coarser tiles stand in while finer ones load, zoom keeps the point
under the cursor, markers sit on their cells, the overview navigates."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication

from cellviewer.core.sources import open_image
from cellviewer.paths import demo_dir
from cellviewer.ui.viewer.markers import ClassStyle
from cellviewer.ui.viewer.slide_view import PLACEHOLDER, SlideView
from cellviewer.ui.viewer.tiles import SourceHandle, TileCache, TileLoader

SLIDE = demo_dir() / "slides" / "CMU-1-Small-Region.svs"


@pytest.fixture
def view(qtbot):
    source = open_image(SLIDE)
    v = SlideView(TileLoader(TileCache(), threads=2))
    qtbot.addWidget(v)
    v.resize(640, 480)
    v.show()
    qtbot.waitExposed(v)
    v.set_source(SourceHandle(source))
    yield v
    v.loader.runner.wait()
    source.close()


def _settle(qtbot, v):
    v.repaint()
    qtbot.waitUntil(lambda: (v.repaint() or True) and v.stats["tiles_missing"] == 0
                    and v.loader.pending_count() == 0, timeout=15000)


def test_tiles_load_in_the_background_and_the_view_reports_it(qtbot, view):
    with qtbot.waitSignal(view.tilesShown, timeout=15000) as shown:
        view.repaint()  # the first paint only asks: it cannot have every tile yet
        assert view.stats["tiles_missing"] > 0
    assert shown.args[0] > 0
    _settle(qtbot, view)
    assert view.stats["tiles_drawn"] > 0


def test_one_to_one_shows_the_slide_s_own_pixels(qtbot, view):
    view.centre_on(1100, 1500, 1.0)
    _settle(qtbot, view)
    shot = view.grab().toImage()
    region = open_image(SLIDE).read_region(0, 1000, 1400, 200, 200)
    for x, y in [(1000, 1400), (1055, 1433), (1199, 1599)]:
        p = view.image_to_view(x, y).toPoint()  # pixel x covers [x, x+1) on screen
        c = shot.pixelColor(p)
        assert (c.red(), c.green(), c.blue()) == tuple(region[y - 1400, x - 1000])


def test_coarser_tiles_stand_in_while_finer_ones_load(qtbot, view):
    _settle(qtbot, view)  # the fitted view: coarse tiles cached
    view.loader.runner.pool.setMaxThreadCount(1)
    view.centre_on(700, 900, 2.0)
    view.repaint()
    assert view.stats["tiles_missing"] > 0  # level-0 tiles requested, not there yet
    c = view.grab().toImage().pixelColor(view.rect().center())
    assert c != PLACEHOLDER and c != QColor("#2b2b2b")  # the scaled-up coarse tile, not a hole


def test_wheel_zoom_keeps_the_point_under_the_cursor(qtbot, view):
    anchor = QPointF(400, 150)
    before = view.view_to_image(anchor)
    z0 = view.zoom()
    event = QWheelEvent(anchor, view.mapToGlobal(anchor), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view, event)
    assert view.zoom() == pytest.approx(z0 * 1.25 ** 2)
    after = view.view_to_image(anchor)
    assert abs(after[0] - before[0]) < 1 / view.zoom() + 1e-6
    assert abs(after[1] - before[1]) < 1 / view.zoom() + 1e-6


def test_markers_sit_on_their_cells(qtbot, view):
    view.layer.set_classes([ClassStyle(3, "a", "#00ff00"), ClassStyle(4, "b", "#ff00ff")])
    view.set_marker_style("dot", 14)
    view.set_cells(["p", "q"], np.array([[800.0, 1200.0], [1300.0, 1800.0]]), [3, 4])
    view.centre_on(1000, 1500, 0.5)
    shot = view.grab().toImage()
    assert shot.pixelColor(view.image_to_view(800, 1200).toPoint()) == QColor("#00ff00")
    assert shot.pixelColor(view.image_to_view(1300, 1800).toPoint()) == QColor("#ff00ff")
    # hidden classes disappear
    view.layer.set_hidden({4})
    view.cells_updated()
    shot = view.grab().toImage()
    assert shot.pixelColor(view.image_to_view(1300, 1800).toPoint()) != QColor("#ff00ff")


def test_overview_click_jumps_there(qtbot, view):
    view.centre_on(200, 200, 2.0)
    box = view.overview_rect()
    assert not box.isEmpty()
    target = QPoint(box.left() + box.width() * 3 // 4, box.top() + box.height() // 2)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=target)
    x, y = view.view_to_image(QPointF(view.rect().center()))
    assert abs(x - 0.75 * 2220) < 30 and abs(y - 0.5 * 2967) < 30
    view.fit()
    assert view.overview_rect().isEmpty()  # nothing to navigate when it all fits
