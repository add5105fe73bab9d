"""The Display panel: how the slide looks (brightness, contrast, gamma, one stain's channel),
how the markers look (size, opacity, outline), and magnification presets.

Everything here changes the view only: the slide view composes its tiles and runs them through
:func:`cellviewer.core.display.adjust_bgrx_inplace` (the tile cache keeps the image's own
pixels), and the patches a model sees are cropped from the image source, so no prediction
changes with the display. The settings are kept in the app settings (``display/…``).
Magnification presets show the image as a 10×, 20× or 40× objective would where the pixel size
is known (40× = 0.25 µm per pixel), and are greyed out where it is not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.display import (
    CHANNEL_NAMES,
    CHANNELS,
    DisplaySettings,
    adjust_bgrx_inplace,
    magnification_zoom,
)
from cellviewer.ui.common.settings import app_settings

OBJECTIVES = (10, 20, 40)


def qimage_pixels(img: QImage) -> np.ndarray:
    """A (h, w, 4) uint8 view of an RGB32 image's memory (B, G, R, X), writable in place."""
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.bits(), np.uint8, count=h * bpl)
    return buf.reshape(h, bpl)[:, : 4 * w].reshape(h, w, 4)


def display_filter(settings: DisplaySettings) -> Callable[[QImage], None] | None:
    """What the slide view runs its composed tiles through (None: show them as they are)."""
    if settings.identity:
        return None

    def apply(img: QImage) -> None:
        if img.format() not in (QImage.Format.Format_RGB32, QImage.Format.Format_ARGB32):
            return
        adjust_bgrx_inplace(qimage_pixels(img), settings)

    return apply


def _slider(low: int, high: int, value: int) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(low, high)
    s.setValue(value)
    return s


class DisplayPanel(QWidget):
    """``settingsChanged(DisplaySettings)``; marker changes go straight to the view."""

    settingsChanged = Signal(object)

    def __init__(self, view, size_spin: QSpinBox | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.size_spin = size_spin  # the toolbar's, kept in step
        self.settings = DisplaySettings()
        self.channel_combo = QComboBox()
        for ch in CHANNELS:
            self.channel_combo.addItem(CHANNEL_NAMES[ch], ch)
        self.channel_combo.setToolTip("One stain alone, by colour deconvolution (H-E-DAB); "
                                      "for the eye only: models see the image's colours")
        self.brightness = _slider(-100, 100, 0)
        self.contrast = _slider(10, 400, 100)
        self.gamma = _slider(20, 500, 100)
        self.value_label = QLabel()
        reset = self.reset_button = QPushButton("Reset")
        reset.setToolTip("The image as it is (brightness 0, contrast 1, gamma 1, colour)")
        reset.clicked.connect(self.reset)

        self.marker_size = QSpinBox()
        self.marker_size.setRange(4, 40)
        self.marker_size.setSuffix(" px")
        self.marker_size.setValue(view.marker_size)
        self.opacity = _slider(10, 100, round(view.marker_opacity * 100))
        self.outline = QDoubleSpinBox()
        self.outline.setRange(0.5, 4.0)
        self.outline.setSingleStep(0.25)
        self.outline.setSuffix(" ×")
        self.outline.setValue(view.marker_outline)

        self.preset_buttons: dict[int, QToolButton] = {}  # (tool buttons: the row stays narrow)
        presets = QHBoxLayout()
        presets.setContentsMargins(0, 0, 0, 0)
        for label, slot in (("Fit", view.fit), ("1:1", view.one_to_one)):
            b = QToolButton()
            b.setText(label)
            b.clicked.connect(lambda _c=False, f=slot: f())
            presets.addWidget(b)
        for obj in OBJECTIVES:
            b = QToolButton()
            b.setText(f"{obj}×")
            b.clicked.connect(lambda _c=False, o=obj: self.magnify(o))
            self.preset_buttons[obj] = b
            presets.addWidget(b)
        presets.addStretch(1)

        form = QFormLayout()
        form.addRow("Channel", self.channel_combo)
        form.addRow("Brightness", self.brightness)
        form.addRow("Contrast", self.contrast)
        form.addRow("Gamma", self.gamma)
        form.addRow(self.value_label, reset)
        form.addRow(QLabel("<b>Markers</b>"))
        form.addRow("Size", self.marker_size)
        form.addRow("Opacity", self.opacity)
        form.addRow("Outline", self.outline)
        form.addRow(QLabel("<b>Magnification</b>"))
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(presets)
        lay.addStretch(1)

        self.channel_combo.currentIndexChanged.connect(lambda _i: self._changed())
        for s in (self.brightness, self.contrast, self.gamma):
            s.valueChanged.connect(lambda _v: self._changed())
        self.marker_size.valueChanged.connect(self._size_changed)
        if size_spin is not None:
            size_spin.valueChanged.connect(self._toolbar_size)
        self.opacity.valueChanged.connect(
            lambda v: self.view.set_marker_style(opacity=v / 100.0))
        self.outline.valueChanged.connect(lambda v: self.view.set_marker_style(outline=v))
        self.update_presets()
        self._show_values()

    # --- the image's look --------------------------------------------------------------------
    def current(self) -> DisplaySettings:
        return DisplaySettings(self.brightness.value() / 100.0, self.contrast.value() / 100.0,
                               self.gamma.value() / 100.0, self.channel_combo.currentData())

    def set_settings(self, settings: DisplaySettings) -> None:
        widgets = (self.channel_combo, self.brightness, self.contrast, self.gamma)
        for w in widgets:
            w.blockSignals(True)
        self.channel_combo.setCurrentIndex(CHANNELS.index(settings.channel))
        self.brightness.setValue(round(settings.brightness * 100))
        self.contrast.setValue(round(settings.contrast * 100))
        self.gamma.setValue(round(settings.gamma * 100))
        for w in widgets:
            w.blockSignals(False)
        self._changed()

    def reset(self) -> None:
        self.set_settings(DisplaySettings())

    def _changed(self) -> None:
        self.settings = self.current()
        self.view.set_display_filter(display_filter(self.settings))
        self._show_values()
        self.settingsChanged.emit(self.settings)

    def _show_values(self) -> None:
        s = self.settings
        self.value_label.setText(f"{s.brightness:+.2f} · ×{s.contrast:.2f} · γ {s.gamma:.2f}")

    # --- markers -----------------------------------------------------------------------------
    def _size_changed(self, value: int) -> None:
        self.view.set_marker_style(size=value)
        if self.size_spin is not None and self.size_spin.value() != value:
            self.size_spin.setValue(value)

    def _toolbar_size(self, value: int) -> None:
        if self.marker_size.value() != value:
            self.marker_size.blockSignals(True)
            self.marker_size.setValue(value)
            self.marker_size.blockSignals(False)

    # --- magnification -----------------------------------------------------------------------
    def mpp(self) -> float | None:
        handle = self.view.handle
        return handle.mpp if handle is not None else None

    def update_presets(self) -> None:
        """The objective buttons work where the image's pixel size is known."""
        known = bool(self.mpp())
        for obj, b in self.preset_buttons.items():
            b.setEnabled(known)
            b.setToolTip(f"Show the image as a {obj}× objective would (40× = 0.25 µm/px)"
                         if known else "The image's pixel size is not known")

    def magnify(self, objective: int) -> bool:
        zoom = magnification_zoom(objective, self.mpp())
        if zoom is None:
            return False
        self.view.set_zoom(zoom)
        return True


def save(panel: DisplayPanel) -> None:
    s = app_settings()
    st = panel.settings
    for key, value in (("brightness", st.brightness), ("contrast", st.contrast),
                       ("gamma", st.gamma), ("channel", st.channel),
                       ("marker_opacity", panel.view.marker_opacity),
                       ("marker_outline", panel.view.marker_outline)):
        s.setValue(f"display/{key}", value)


def restore(panel: DisplayPanel) -> None:
    s = app_settings()
    with contextlib.suppress(TypeError, ValueError):
        panel.set_settings(DisplaySettings(
            float(s.value("display/brightness", 0.0)), float(s.value("display/contrast", 1.0)),
            float(s.value("display/gamma", 1.0)), str(s.value("display/channel", "rgb"))))
    with contextlib.suppress(TypeError, ValueError):
        panel.opacity.setValue(round(float(s.value("display/marker_opacity", 1.0)) * 100))
    with contextlib.suppress(TypeError, ValueError):
        panel.outline.setValue(float(s.value("display/marker_outline", 1.0)))


def install(window) -> QDockWidget:
    """The Display dock (left, with the images) and its settings kept between sessions."""
    panel = DisplayPanel(window.view, getattr(window, "size_spin", None))
    dock = QDockWidget("Display", window)
    dock.setObjectName("display_dock")
    dock.setWidget(panel)
    window.add_panel(dock, Qt.DockWidgetArea.LeftDockWidgetArea)
    window.display_panel = panel
    restore(panel)
    panel.settingsChanged.connect(lambda _s: save(panel))
    panel.opacity.valueChanged.connect(lambda _v: save(panel))
    panel.outline.valueChanged.connect(lambda _v: save(panel))
    window.view.viewChanged.connect(panel.update_presets)
    window.imageChanged.connect(lambda _i: panel.update_presets())
    return dock
