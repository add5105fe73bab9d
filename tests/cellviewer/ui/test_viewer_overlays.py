"""What the view draws around the image: the scale bar stays clear of the legend, and the blur
preview, like the cell panel, shows nothing once nothing is selected."""

from __future__ import annotations

from demo_window import WAIT_MS, open_demo_window
from PySide6.QtCore import QRect

from cellviewer.ui.viewer.legend import Legend


def _show_slide(qtbot, w) -> None:
    slide = next(r.id for r in w.store.images() if str(r.path).endswith(".svs"))
    w.show_image(slide)
    qtbot.waitUntil(lambda: w.current_image_id() == slide and w.view.handle is not None
                    and bool(w.view.handle.mpp), timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)


def test_the_scale_bar_is_not_under_the_legend(qtbot):
    w = open_demo_window(qtbot)
    _show_slide(qtbot, w)
    legend = w.view.findChild(Legend, "legend")
    assert legend is not None and legend.isVisible()
    shot = w.view.grab().toImage()
    v = w.view
    # the bar: a white run 4 px high, 18 px above the bottom, ending 16 px from the right edge
    y = v.height() - 16
    x_end = v.width() - 17
    assert shot.pixelColor(x_end, y).name() == "#ffffff"
    assert not QRect(legend.pos(), legend.size()).contains(x_end, y)


def test_clearing_the_selection_clears_the_blur_preview(qtbot):
    w = open_demo_window(qtbot)
    preview = w.prediction_tools.blur_preview
    ids = w.visible_cell_ids()
    w.select_cells(ids[:1])
    qtbot.waitUntil(lambda: preview._patch is not None, timeout=WAIT_MS)
    w.select_cells([])
    qtbot.waitUntil(lambda: preview._patch is None, timeout=WAIT_MS)
