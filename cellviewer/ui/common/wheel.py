"""The mouse wheel scrolls a panel, not the slider under the pointer.

Scrolling down a scrollable dock (the blur preview, the model panel) with the wheel used to
stop the moment the pointer crossed the σ slider or a spin box, and change its value instead:
the σ jumped while the user only meant to scroll. As in most desktop tools, a slider, spin box
or combo box inside a scrollable panel now takes the wheel only when it has the keyboard focus
(click it first, or Tab to it); otherwise the wheel goes to the panel, which scrolls. A control
outside a scroll area (the toolbar's marker size) keeps the wheel as before.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollArea,
    QScrollBar,
    QWidget,
)

VALUE_CONTROLS = (QAbstractSlider, QAbstractSpinBox, QComboBox)


def panel_scroll_area(widget: QWidget) -> QScrollArea | None:
    """The panel scroll area (not a table's) ``widget`` lies in, if any."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractItemView):
            return None
        if isinstance(parent, QScrollArea):
            return parent
        parent = parent.parentWidget()
    return None


def _value_control(obj: QObject) -> QWidget | None:
    """The slider/spin box/combo box an event sent to ``obj`` is for (a spin box's line edit
    passes it on to its spin box)."""
    w = obj if isinstance(obj, QWidget) else None
    while w is not None and not isinstance(w, VALUE_CONTROLS):
        if w.isWindow() or isinstance(w, QScrollArea):
            return None
        w = w.parentWidget()
    if isinstance(w, QScrollBar):
        return None  # a scroll bar is for scrolling
    return w


class _WheelGuard(QObject):
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # Qt override
        if event.type() != QEvent.Type.Wheel:
            return False
        control = _value_control(obj)
        if control is None or control.hasFocus():
            return False
        area = panel_scroll_area(control)
        if area is None:
            return False
        QCoreApplication.sendEvent(area.viewport(), event)  # the panel scrolls
        return True


_guard: _WheelGuard | None = None


def install() -> None:
    """Guard every value control in a scrollable panel of the application (once). Their
    focus policy becomes StrongFocus so that the wheel never focuses them either."""
    global _guard
    app = QApplication.instance()
    if app is None or _guard is not None:
        return
    _guard = _WheelGuard(app)
    app.installEventFilter(_guard)


def strong_focus(root: QWidget) -> None:
    """Value controls under ``root`` that take focus by the wheel take it by click instead."""
    for w in root.findChildren(QWidget):
        if isinstance(w, VALUE_CONTROLS) and not isinstance(w, QScrollBar) and \
                w.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
