"""Crops of cells near the image border are reflect-padded: the gallery, the blur preview and
the cell details mark the padding and say how much of the crop (and how many cells) it is."""

from __future__ import annotations

import numpy as np
from demo_window import open_demo_window

from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.viewer.padding import inside_rect, padded_mask, padded_share


def test_inside_rect_follows_the_croppers_rule():
    assert inside_rect((10, 10), 40, 640, 480) is None
    assert inside_rect((-10, 5), 40, 640, 480) == (10.0, 0.0, 40.0, 40.0)
    assert inside_rect((620, 460), 40, 640, 480) == (0.0, 0.0, 20.0, 20.0)
    assert inside_rect((-40, 0), 80, 640, 480) == (20.0, 0.0, 40.0, 40.0)  # at S=80: halved
    assert padded_share((10.0, 0.0, 40.0, 40.0)) == 0.25
    xy = np.array([[5.0, 200.0], [300.0, 200.0], [630.5, 475.0]])
    assert padded_mask(xy, 40, 640, 480).tolist() == [True, False, True]


def _demo(qtbot) -> MainWindow:
    return open_demo_window(qtbot, (1300, 800))


def test_a_border_cell_is_marked_everywhere(qtbot):
    w = _demo(qtbot)
    cells, handle = w.session.cells, w._handle
    edge = padded_mask(cells.xy, 40, handle.width, handle.height)
    assert edge.any() and (~edge).any()
    border_id = str(cells.ids[np.flatnonzero(edge)[0]])
    middle_id = str(cells.ids[np.flatnonzero(~edge)[0]])
    w.gallery_panel.set_filter("selection")

    w.select_cells([border_id])
    qtbot.waitUntil(lambda: w.details.padding is not None, timeout=10_000)
    assert "reflect-padded" in w.details.fields["Crop"].text()
    qtbot.waitUntil(lambda: w.gallery.count() == 1 and w.gallery.has_patch(0), timeout=10_000)
    w.gallery.grab()  # paint: it asks for its crops
    qtbot.waitUntil(lambda: w.gallery.padding_of(0) is not None, timeout=10_000)
    blur = w.prediction_tools.blur_preview
    qtbot.waitUntil(lambda: blur.clean_view.padding is not None, timeout=10_000)
    assert blur.blurred_view.padding == blur.clean_view.padding

    w.select_cells([middle_id])
    qtbot.waitUntil(lambda: w.details.fields["Crop"].text() == "inside the image",
                    timeout=10_000)
    assert w.details.padding is None
    qtbot.waitUntil(lambda: blur.clean_view.padding is None, timeout=10_000)

    w.select_cells([border_id, middle_id])
    assert w.details.fields["Crop"].text().startswith("1 of 2 near the image border")
