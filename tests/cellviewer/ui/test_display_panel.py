"""The Display panel changes the view only: the tiles shown, never the crops a model sees."""

from __future__ import annotations

import numpy as np
from demo_window import open_demo_window
from PySide6.QtGui import QImage

from cellviewer.core.cells.crop import crop_patches
from cellviewer.core.display import DisplaySettings
from cellviewer.ui.main_window import MainWindow
from cellviewer.ui.viewer.display import qimage_pixels


def _demo(qtbot) -> MainWindow:
    return open_demo_window(qtbot, (1200, 800))


def _shown(w: MainWindow) -> np.ndarray:
    """The view's tiles as painted (markers hidden)."""
    w.markers_action.setChecked(False)
    w.legend_action.setChecked(False)
    img = w.view.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    return qimage_pixels(img)[..., :3].copy()


def test_display_adjustments_change_the_view_not_the_crops(qtbot):
    w = _demo(qtbot)
    source = w.current_image_source()
    xy = w.session.cells.xy[:20]
    before = crop_patches(source, xy, workers=1).patches
    qtbot.waitUntil(lambda: w.loader.pending_count() == 0, timeout=10_000)
    plain = _shown(w)
    cached = {k: qimage_pixels(v).copy() for k, v in w.loader.cache._items.items()}
    panel = w.display_panel
    panel.set_settings(DisplaySettings(brightness=0.3, gamma=1.5, channel="dab"))
    assert w.view.display_filter is not None
    qtbot.waitUntil(lambda: w.loader.pending_count() == 0, timeout=10_000)
    adjusted = _shown(w)
    assert adjusted.shape == plain.shape
    assert np.abs(adjusted.astype(int) - plain.astype(int)).mean() > 5  # the view changed
    after = crop_patches(source, xy, workers=1).patches
    assert np.array_equal(before, after)  # the model's patches did not
    for k, v in w.loader.cache._items.items():
        if k in cached:
            assert np.array_equal(qimage_pixels(v), cached[k])  # the cache keeps the image's
    panel.reset()
    assert w.view.display_filter is None
    assert np.array_equal(_shown(w), plain)


def test_marker_size_opacity_outline_and_kept_settings(qtbot):
    w = _demo(qtbot)
    panel = w.display_panel
    panel.marker_size.setValue(20)
    assert w.view.marker_size == 20 and w.size_spin.value() == 20
    panel.opacity.setValue(40)
    panel.outline.setValue(2.5)
    assert w.view.marker_opacity == 0.4 and w.view.marker_outline == 2.5
    panel.set_settings(DisplaySettings(contrast=1.5, channel="hematoxylin"))
    w.close()
    again = MainWindow()
    qtbot.addWidget(again)
    again.install_tools()
    assert again.display_panel.settings == DisplaySettings(contrast=1.5, channel="hematoxylin")
    assert again.view.marker_opacity == 0.4 and again.view.marker_outline == 2.5


def test_magnification_presets_follow_the_pixel_size(qtbot):
    w = _demo(qtbot)
    panel = w.display_panel
    if not panel.mpp():  # the demo's tiles have no pixel size: presets are greyed out
        assert not panel.preset_buttons[20].isEnabled()
        assert not panel.magnify(20)
        w._handle.mpp = 0.25  # as a scanned slide at 40x would say
        panel.update_presets()
    assert panel.preset_buttons[20].isEnabled()
    assert panel.magnify(20)
    assert abs(w.view.zoom() - panel.mpp() / 0.5) < 1e-6  # 20x: 0.5 µm per screen pixel
