"""The ruler: the Measure tool (M, or the toolbar) measures a dragged distance on a real slide
in µm from its pixel size (pixels, saying so, where there is none); the line stays on the
tissue while zooming, and Esc, a click or another image clears it."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import QPointF, Qt

from cellviewer.core.formatting import format_length
from cellviewer.core.sources import open_image
from cellviewer.paths import demo_dir
from cellviewer.ui.viewer.slide_view import SlideView
from cellviewer.ui.viewer.tiles import SourceHandle, TileCache, TileLoader

SLIDE = demo_dir() / "slides" / "CMU-1-Small-Region.svs"


def test_lengths_read_in_micrometres_or_in_pixels_with_the_reason():
    assert format_length(50, 0.25) == "12.5 µm · 50 px"
    assert format_length(8, 0.5) == "4.00 µm · 8.0 px"
    assert format_length(8000, 0.5) == "4.00 mm · 8,000 px"
    assert format_length(50, None) == "50 px (no pixel size)"
    assert format_length(50, 0.0) == "50 px (no pixel size)"


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


def _drag(qtbot, v, a: QPointF, b: QPointF) -> None:
    qtbot.mousePress(v, Qt.MouseButton.LeftButton, pos=a.toPoint())
    qtbot.mouseMove(v, ((a + b) / 2).toPoint())
    qtbot.mouseMove(v, b.toPoint())
    qtbot.mouseRelease(v, Qt.MouseButton.LeftButton, pos=b.toPoint())


def test_a_drag_with_the_measure_tool_measures_in_micrometres(qtbot, view):
    mpp = view.handle.mpp
    assert mpp and 0.4 < mpp < 0.6  # the slide's own calibration (Aperio, 20x)
    view.centre_on(1100, 1500, 2.0)
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert view.tool == "measure"
    texts: list[str] = []
    view.measured.connect(texts.append)
    a, b = view.image_to_view(1000, 1400), view.image_to_view(1060, 1480)  # 100 px apart
    _drag(qtbot, view, a, b)
    assert view.ruler is not None
    assert view.ruler.length_px == pytest.approx(100, abs=1.0)  # within a screen pixel
    assert texts[-1] == format_length(view.ruler.length_px, mpp)
    assert texts[-1].endswith(" px") and "µm" in texts[-1]
    assert float(texts[-1].split(" µm")[0]) == pytest.approx(100 * mpp, rel=0.02)
    assert view.layer.cells is not None and len(view.selected_ids()) == 0  # nothing selected

    # the line stays on the same tissue when the view zooms
    view.set_zoom(4.0)
    assert view.ruler.length_px == pytest.approx(100, abs=1.0)
    shot = view.grab().toImage()
    mid = view.image_to_view(1030, 1440).toPoint()
    colour = shot.pixelColor(mid)
    assert (colour.red(), colour.green(), colour.blue()) == (0, 229, 255)  # the ruler's cyan

    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert view.ruler is None and view.tool == "select" and texts[-1] == ""


def test_a_click_or_another_image_clears_the_ruler(qtbot, view):
    view.set_tool("measure")
    _drag(qtbot, view, QPointF(100, 100), QPointF(200, 100))
    assert view.ruler is not None and view.ruler.length_px > 0
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPointF(300, 300).toPoint())
    assert view.ruler is None
    _drag(qtbot, view, QPointF(100, 100), QPointF(200, 100))
    source = open_image(SLIDE)
    view.set_source(SourceHandle(source))
    assert view.ruler is None
    source.close()


def test_without_a_pixel_size_the_ruler_says_pixels(qtbot, tmp_path):
    import numpy as np
    from PIL import Image

    path = tmp_path / "tile.png"
    Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(path)
    source = open_image(path)
    v = SlideView(TileLoader(TileCache(), threads=1))
    qtbot.addWidget(v)
    v.resize(400, 300)
    v.show()
    v.set_source(SourceHandle(source))
    v.centre_on(200, 150, 1.0)
    v.set_tool("measure")
    texts: list[str] = []
    v.measured.connect(texts.append)
    _drag(qtbot, v, v.image_to_view(50, 50), v.image_to_view(80, 90))
    assert texts[-1] == "50 px (no pixel size)"
    assert math.isclose(v.ruler.length_px, 50, abs_tol=1.0)
    v.loader.runner.wait()
    source.close()


def test_the_toolbar_s_tools_take_turns_and_the_status_bar_shows_the_length(qtbot):
    from demo_window import open_demo_window

    w = open_demo_window(qtbot)
    w.measure_action.trigger()
    assert w.view.tool == "measure" and w.measure_action.isChecked()
    w.add_mode_action.trigger()  # another tool takes over: measure unchecks, add stays on
    assert w.view.tool == "add" and not w.measure_action.isChecked()
    qtbot.keyClick(w.view, Qt.Key.Key_M)
    assert w.view.tool == "measure" and not w.add_mode_action.isChecked()
    v = w.view
    _drag(qtbot, v, QPointF(200, 200), QPointF(260, 280))
    assert w.statusBar().currentMessage() == "Measured: " + v.ruler.label(v.handle.mpp)
    w.measure_action.trigger()  # off again: the select tool
    assert v.tool == "select"
