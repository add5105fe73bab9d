"""Live blur preview: how fragile is the model's call on this cell?

For the selected cell it shows the clean 40x40 patch and the blurred one side by side,
magnified with crisp pixels (nearest-neighbour, so the user sees the pixels the model sees), a
σ slider from 0 to 3 with the study's values 0.1, 0.2, 0.4, 0.8 and 1.6 marked, a pre-resize /
post-resize switch, and the model's class probabilities for both patches as bars.

The widget knows nothing about models: it is fed a patch (and, for pre-resize blur, the source
crop) and two callables, ``predict(patches, sigma, mode, source_crops) -> probs (N, K)`` and
``blur(patch, sigma, mode, source_crop) -> blurred patch``, which run in a background thread
(``LatestRunner``). Slider moves are debounced (a few ms) and only the newest request's result
reaches the screen, so dragging the slider never queues stale work. Clean probabilities are
computed once per cell and cached.

"Apply to visible cells" is only a switch here (``applyToVisibleChanged``); whoever owns the
slide view does the work (see ``prediction_install``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QVBoxLayout,
    QWidget,
)

from cellviewer.ui.predict.worker import LatestRunner
from cellviewer.ui.viewer.padding import Inside, paint_padding

#: The study's blur levels, marked on the slider.
STUDY_SIGMAS = (0.1, 0.2, 0.4, 0.8, 1.6)
SIGMA_MAX = 3.0
SLIDER_STEPS_PER_UNIT = 100  # the slider moves in steps of 0.01
POST, PRE = "post", "pre"

PredictFn = Callable[[np.ndarray, float, str, "np.ndarray | None"], np.ndarray]
BlurFn = Callable[[np.ndarray, float, str, "np.ndarray | None"], np.ndarray]


def rgb_to_qimage(patch: np.ndarray) -> QImage:
    """An (H, W, 3) uint8 RGB array as a QImage (a copy, so the array may change afterwards)."""
    patch = np.ascontiguousarray(patch[..., :3], dtype=np.uint8)
    h, w = patch.shape[:2]
    return QImage(patch.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class PatchView(QWidget):
    """A patch magnified by an integer factor with nearest-neighbour scaling (crisp pixels)."""

    def __init__(self, title: str = "", zoom: int = 4, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self.padding: Inside | None = None  # a reflect-padded crop's inside part (marked)
        self._title = title
        self._zoom = zoom
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # Qt naming
        return QSize(40 * self._zoom, 40 * self._zoom + 18)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def set_patch(self, patch: np.ndarray | None) -> None:
        self._image = None if patch is None else rgb_to_qimage(patch)
        self.update()

    def set_padding(self, inside: Inside | None) -> None:
        self.padding = inside
        self.update()

    def set_title(self, title: str) -> None:
        self._title = title
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        side = 40 * self._zoom
        target = QRectF(0, 18, side, side)
        p.fillRect(target, QColor("#303030"))
        if self._image is not None:
            # No smooth-pixmap hint: Qt scales with nearest neighbour, one model pixel = a block.
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            p.drawImage(target, self._image)
            paint_padding(p, target, self.padding)
        p.setPen(self.palette().windowText().color())
        p.drawText(QRectF(0, 0, side, 16), Qt.AlignmentFlag.AlignLeft, self._title)
        p.end()


class ProbabilityBars(QWidget):
    """Horizontal bars, one per class, in the class colour; the top class in bold.

    ``compare`` (optional) draws a thin tick at another set of probabilities (the clean ones
    under the blurred bars) so a change is visible at a glance.
    """

    ROW = 15

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._names: list[str] = []
        self._colors: list[QColor] = []
        self._probs: np.ndarray | None = None
        self._compare: np.ndarray | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_classes(self, names: Sequence[str], colors: Sequence[str]) -> None:
        self._names = list(names)
        self._colors = [QColor(c) for c in colors]
        self._probs = self._compare = None
        self.updateGeometry()
        self.update()

    def set_probs(self, probs: np.ndarray | None, compare: np.ndarray | None = None) -> None:
        self._probs = None if probs is None else np.asarray(probs, dtype=np.float64)
        self._compare = None if compare is None else np.asarray(compare, dtype=np.float64)
        self.update()

    def probs(self) -> np.ndarray | None:
        return self._probs

    def sizeHint(self) -> QSize:
        return QSize(180, max(1, len(self._names)) * self.ROW + 2)

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.sizeHint().height())

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        fm = p.fontMetrics()
        label_w = min(max((fm.horizontalAdvance(n) for n in self._names), default=40) + 6,
                      self.width() // 2)
        value_w = fm.horizontalAdvance("100%") + 4
        bar_w = max(10, self.width() - label_w - value_w)
        top = int(np.argmax(self._probs)) if self._probs is not None and len(self._probs) else -1
        text = self.palette().windowText().color()
        bold = QFont(p.font())
        bold.setBold(True)
        normal = QFont(p.font())
        for i, name in enumerate(self._names):
            y = i * self.ROW + 1
            p.setFont(bold if i == top else normal)
            p.setPen(text)
            p.drawText(QRectF(0, y, label_w - 4, self.ROW), Qt.AlignmentFlag.AlignVCenter
                       | Qt.AlignmentFlag.AlignRight, fm.elidedText(
                           name, Qt.TextElideMode.ElideRight, label_w - 4))
            p.fillRect(QRectF(label_w, y + 2, bar_w, self.ROW - 4), QColor(128, 128, 128, 40))
            if self._probs is not None and i < len(self._probs):
                v = float(self._probs[i])
                color = self._colors[i] if i < len(self._colors) else QColor("#888")
                p.fillRect(QRectF(label_w, y + 2, bar_w * v, self.ROW - 4), color)
                p.drawText(QRectF(label_w + bar_w + 2, y, value_w, self.ROW),
                           Qt.AlignmentFlag.AlignVCenter, f"{100 * v:.0f}%")
            if self._compare is not None and i < len(self._compare):
                x = label_w + bar_w * float(self._compare[i])
                p.setPen(QPen(text, 1.5))
                p.drawLine(int(x), y + 1, int(x), y + self.ROW - 2)
        p.end()


class SigmaSlider(QWidget):
    """A σ slider (0 to 3 in steps of 0.01) with the study's values marked and labelled below;
    clicking a label jumps to that value."""

    valueChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, int(SIGMA_MAX * SLIDER_STEPS_PER_UNIT))
        self.slider.setSingleStep(1)
        self.slider.setPageStep(10)
        self.slider.valueChanged.connect(
            lambda v: self.valueChanged.emit(v / SLIDER_STEPS_PER_UNIT))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.slider)
        self._marks = _SigmaMarks(self)
        lay.addWidget(self._marks)

    def value(self) -> float:
        return self.slider.value() / SLIDER_STEPS_PER_UNIT

    def setValue(self, sigma: float) -> None:  # Qt naming, like QSlider
        self.slider.setValue(round(sigma * SLIDER_STEPS_PER_UNIT))

    def mark_x(self, sigma: float) -> int:
        """The x of σ's handle centre in this widget's coordinates (where its mark is drawn)."""
        opt = QStyleOptionSlider()
        self.slider.initStyleOption(opt)
        groove = self.slider.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, self.slider)
        handle = self.slider.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, self.slider)
        span = groove.width() - handle.width()
        pos = QStyle.sliderPositionFromValue(self.slider.minimum(), self.slider.maximum(),
                                             round(sigma * SLIDER_STEPS_PER_UNIT), span)
        return self.slider.x() + groove.x() + pos + handle.width() // 2


class _SigmaMarks(QWidget):
    def __init__(self, owner: SigmaSlider) -> None:
        super().__init__(owner)
        self.owner = owner
        # A tick, then two rows of labels (close values such as 0.1 and 0.2 are staggered).
        self.setFixedHeight(7 + 2 * self.fontMetrics().height())
        self.setToolTip("The study's blur levels; click one to jump to it")

    def _positions(self) -> list[tuple[float, int]]:
        return [(s, self.owner.mark_x(s)) for s in (0.0, *STUDY_SIGMAS, SIGMA_MAX)]

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        fm = p.fontMetrics()
        text = self.palette().windowText().color()
        accent = self.palette().highlight().color()
        # Labels of close marks (0.1 and 0.2) would collide: stagger them on two rows.
        last_right = -1e9
        for sigma, x in self._positions():
            study = sigma in STUDY_SIGMAS
            p.setPen(QPen(accent if study else text, 2 if study else 1))
            p.drawLine(x, 0, x, 5)
            label = f"{sigma:g}"
            w = fm.horizontalAdvance(label)
            left = x - w / 2
            row = 0 if left > last_right + 2 else 1
            if row == 0:
                last_right = left + w
            p.setPen(accent if study else text)
            p.drawText(QRectF(left, 6 + row * fm.height(), w + 2, fm.height()), label)
        p.end()

    def mousePressEvent(self, event) -> None:
        x = event.position().x()
        sigma, _ = min(self._positions(), key=lambda sp: abs(sp[1] - x))
        self.owner.setValue(sigma)


@dataclass
class PreviewResult:
    """One answer of the background predictor for the cell on screen."""

    cell_key: object
    sigma: float
    mode: str
    clean_probs: np.ndarray
    blurred_patch: np.ndarray
    blurred_probs: np.ndarray
    requested_at: float  # perf_counter when the slider moved (for the latency benchmark)


class BlurPreview(QWidget):
    """The live blur preview panel (see the module docstring).

    Signals: ``blurChanged(sigma, mode)`` when the user changes σ or the mode;
    ``applyToVisibleChanged(bool)``; ``updated(PreviewResult)`` after the bars show a new
    result; ``failed(str)`` when the predictor raised.
    """

    blurChanged = Signal(float, str)
    applyToVisibleChanged = Signal(bool)
    updated = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, debounce_ms: int = 5,
                 zoom: int = 4) -> None:
        super().__init__(parent)
        self._predict: PredictFn | None = None
        self._blur: BlurFn | None = None
        self._cell_key: object = None
        self._patch: np.ndarray | None = None
        self._source_crop: np.ndarray | None = None
        self._clean_cache: dict[object, np.ndarray] = {}
        self._requested_at = 0.0
        self.last_result: PreviewResult | None = None
        self.runner = LatestRunner(self)
        self.runner.resultReady.connect(self._on_result)
        self.runner.errorRaised.connect(self._on_error)

        self.clean_view = PatchView("clean", zoom)
        self.blurred_view = PatchView("blurred", zoom)
        self.clean_bars = ProbabilityBars()
        self.blurred_bars = ProbabilityBars()
        self.sigma_slider = SigmaSlider()
        self.sigma_label = QLabel()
        self.sigma_label.setMinimumWidth(fm_width(self.sigma_label, "σ = 0.00 px"))
        self.post_button = QRadioButton("post-resize (σ on the 40×40 patch)")
        self.pre_button = QRadioButton("pre-resize (σ × S0/40 on the source crop)")
        self.post_button.setChecked(True)
        self._mode_group = QButtonGroup(self)
        self._mode_group.addButton(self.post_button)
        self._mode_group.addButton(self.pre_button)
        self.apply_visible = QCheckBox("Apply to every visible cell (recolour markers)")
        self.status = QLabel("Select a cell to preview it.")
        self.status.setWordWrap(True)

        grid = QGridLayout()
        grid.addWidget(self.clean_view, 0, 0, Qt.AlignmentFlag.AlignHCenter)
        grid.addWidget(self.blurred_view, 0, 1, Qt.AlignmentFlag.AlignHCenter)
        grid.addWidget(self.clean_bars, 1, 0)
        grid.addWidget(self.blurred_bars, 1, 1)
        sigma_row = QHBoxLayout()
        sigma_row.addWidget(self.sigma_label)
        sigma_row.addWidget(self.sigma_slider, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addLayout(sigma_row)
        lay.addWidget(self.post_button)
        lay.addWidget(self.pre_button)
        lay.addWidget(self.apply_visible)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._submit)
        self.sigma_slider.valueChanged.connect(self._on_sigma)
        self.post_button.toggled.connect(self._on_mode)
        self.apply_visible.toggled.connect(self.applyToVisibleChanged)
        self.set_sigma(0.8)
        self._update_mode_buttons()

    # --- configuration ----------------------------------------------------------------------
    def set_classes(self, names: Sequence[str], colors: Sequence[str]) -> None:
        self.clean_bars.set_classes(names, colors)
        self.blurred_bars.set_classes(names, colors)
        self._clean_cache.clear()

    def set_predictor(self, predict: PredictFn | None, blur: BlurFn | None = None) -> None:
        """Set (or clear) the model: ``predict`` and ``blur`` run in the background thread."""
        self._predict, self._blur = predict, blur
        self._clean_cache.clear()
        self.last_result = None
        self.clean_bars.set_probs(None)
        self.blurred_bars.set_probs(None)
        self._request()

    def set_cell(self, key: object, patch: np.ndarray | None,
                 source_crop: np.ndarray | None = None, title: str = "",
                 inside: Inside | None = None) -> None:
        """Show a cell: ``key`` identifies it (its id), ``patch`` is its clean 40x40 patch and
        ``source_crop`` the crop at the field of view before resizing (for pre-resize blur);
        ``inside``: for a reflect-padded crop, the part from inside the image (marked on both
        views; the patches themselves, which the model is given, are left as they are)."""
        self._cell_key, self._patch, self._source_crop = key, patch, source_crop
        for view in (self.clean_view, self.blurred_view):
            view.set_padding(inside)
        self.clean_view.set_patch(patch)
        self.clean_view.set_title(f"clean {title}".strip())
        self.blurred_view.set_patch(None)
        self.clean_bars.set_probs(None)
        self.blurred_bars.set_probs(None)
        self._update_mode_buttons()
        self._request()

    # --- state ------------------------------------------------------------------------------
    def sigma(self) -> float:
        return self.sigma_slider.value()

    def set_sigma(self, sigma: float) -> None:
        self.sigma_slider.setValue(sigma)
        self._show_sigma()

    def mode(self) -> str:
        return POST if self.post_button.isChecked() else PRE

    def set_mode(self, mode: str) -> None:
        (self.post_button if mode == POST else self.pre_button).setChecked(True)

    def is_idle(self) -> bool:
        """No request waiting for the debounce timer or the background thread."""
        return not self._debounce.isActive() and self.runner.is_idle()

    # --- internals --------------------------------------------------------------------------
    def _show_sigma(self) -> None:
        self.sigma_label.setText(f"σ = {self.sigma():.2f} px")
        self.blurred_view.set_title(f"blurred, σ {self.sigma():.2f} {self.mode()}")

    def _update_mode_buttons(self) -> None:
        has_crop = self._source_crop is not None
        self.pre_button.setEnabled(has_crop)
        self.pre_button.setToolTip("" if has_crop else
                                   "Pre-resize blur needs the source crop of the cell")
        if not has_crop and self.pre_button.isChecked():
            self.post_button.setChecked(True)

    def _on_sigma(self, sigma: float) -> None:
        self._show_sigma()
        self.blurChanged.emit(sigma, self.mode())
        self._request()

    def _on_mode(self, _checked: bool) -> None:
        self._show_sigma()
        self.blurChanged.emit(self.sigma(), self.mode())
        self._request()

    def _request(self) -> None:
        self._requested_at = time.perf_counter()
        self._debounce.start()

    def _submit(self) -> None:
        if self._patch is None:
            self.status.setText("Select a cell to preview it.")
            return
        if self._predict is None:
            self.status.setText("Choose a model in the Model panel to see its probabilities.")
            return
        predict, blur = self._predict, self._blur
        key, patch, crop = self._cell_key, self._patch, self._source_crop
        sigma, mode, t0 = self.sigma(), self.mode(), self._requested_at
        clean = self._clean_cache.get(key)

        def work() -> PreviewResult:
            p_clean = clean
            if p_clean is None:
                p_clean = predict(patch[None], 0.0, POST, None)[0]
            crops = None if crop is None else crop[None]
            p_blur = predict(patch[None], sigma, mode, crops)[0] if sigma > 0 else p_clean
            shown = blur(patch, sigma, mode, crop) if (blur is not None and sigma > 0) else patch
            return PreviewResult(key, sigma, mode, np.asarray(p_clean), shown,
                                 np.asarray(p_blur), t0)

        self.runner.submit(work)

    def _on_result(self, _ticket: int, result: PreviewResult) -> None:
        if result.cell_key != self._cell_key:
            return
        self._clean_cache[result.cell_key] = result.clean_probs
        self.clean_bars.set_probs(result.clean_probs)
        self.blurred_bars.set_probs(result.blurred_probs, compare=result.clean_probs)
        self.blurred_view.set_patch(result.blurred_patch)
        self.last_result = result
        flipped = int(np.argmax(result.clean_probs)) != int(np.argmax(result.blurred_probs))
        shift = 0.5 * float(np.abs(result.clean_probs - result.blurred_probs).sum())
        self.status.setText(
            f"{'The call FLIPS' if flipped else 'Same call'} under σ {result.sigma:.2f} "
            f"({result.mode}-resize); probability shift {shift:.2f}.")
        self.updated.emit(result)

    def _on_error(self, _ticket: int, message: str) -> None:
        self.status.setText(f"Prediction failed: {message}")
        self.failed.emit(message)

    def closeEvent(self, event) -> None:
        self.runner.close()
        super().closeEvent(event)


def fm_width(widget: QWidget, text: str) -> int:
    return widget.fontMetrics().horizontalAdvance(text) + 4
