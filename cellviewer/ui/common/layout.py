"""The window's layout: a default arrangement of the docks that fits a laptop's 1366 × 768,
"View → Reset layout", and windows (dialogs, floating docks) that fit the screen they open on.

Why a fixed default instead of "wherever each tool docked itself": tools dock in one after
another into the right-hand column, and at 1366 × 768 a column of four stacked groups leaves
the Model panel 90 px tall, its Predict button below the fold. The default puts at most two
groups in each column, each tall enough for the tallest panel in it (measured, see
``tests/cellviewer/ui/test_layout.py``); the user's own arrangement is saved on quit
(``main_window/state``) and restored at the next start, and Reset layout brings the default
back.

:func:`unreachable_controls` is the check the tests use: a control counts as reachable only
when its whole rectangle, mapped to the screen, lies inside every widget that could clip it
(its ancestors up to the window, a scroll area's viewport included) and inside the screen.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, QObject, QRect, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QScreen
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QDockWidget,
    QLineEdit,
    QMainWindow,
    QScrollArea,
    QTabBar,
    QWidget,
)

LEFT, RIGHT = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
BOTTOM = Qt.DockWidgetArea.BottomDockWidgetArea

#: The default arrangement: per column, groups from top to bottom, each a tab group whose
#: first dock is in front. Names are dock object names without "_dock"; absent docks are
#: skipped (a window without the tools installed).
DEFAULT_COLUMNS: dict[Qt.DockWidgetArea, list[list[str]]] = {
    LEFT: [["images", "display"], ["classes"]],
    RIGHT: [["details", "blur_preview", "model", "review", "annotators", "regions",
             "training"]],
    BOTTOM: [["gallery"]],
}
#: groups sized by share of their column (the others by their need): the class list gets
#: more room than the image list
SHARES = {"images": 4, "classes": 6}
#: docks hidden in the default layout (shown from their menus)
HIDDEN_BY_DEFAULT = ("training",)
#: column widths in the default layout (the slide view takes the rest)
COLUMN_WIDTHS = {LEFT: 280, RIGHT: 410}
#: the gallery's strip under the slide view
BOTTOM_HEIGHT = 170
CONTROL_TYPES = (QAbstractButton, QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit,
                 QAbstractItemView)
#: an item view (a table, a list) shows at least this many pixels of rows to count as usable
MIN_ITEM_VIEW_HEIGHT = 48


def _dock(window: QMainWindow, name: str) -> QDockWidget | None:
    return window.findChild(QDockWidget, f"{name}_dock")


def apply_default_layout(window: QMainWindow) -> None:
    """Arrange the window's docks as :data:`DEFAULT_COLUMNS` says, sized to the window: the
    side columns run the window's full height, the gallery is a strip under the slide view."""
    window.setCorner(Qt.Corner.BottomLeftCorner, LEFT)
    window.setCorner(Qt.Corner.BottomRightCorner, RIGHT)
    for area, groups in DEFAULT_COLUMNS.items():
        for group in groups:
            docks = [d for d in (_dock(window, n) for n in group) if d is not None]
            if not docks:
                continue
            for d in docks:
                d.setFloating(False)
                window.removeDockWidget(d)
            first = docks[0]
            window.addDockWidget(area, first, Qt.Orientation.Vertical)
            for d in docks:
                d.setVisible(d.objectName()[:-5] not in HIDDEN_BY_DEFAULT)
            for d in docks[1:]:
                window.tabifyDockWidget(first, d)
            first.raise_()
    hide_stale_tab_bars(window)
    size_columns(window)


def hide_stale_tab_bars(window: QMainWindow) -> None:
    """Hide the tab bars Qt leaves behind, visible, when tabbed docks are taken apart and
    grouped again: each still shows its old group's titles, and one drew itself over the
    Annotators panel at 1366 × 768. A tab bar is live when its titles are those of one
    current tab group."""
    groups = []
    for d in window.findChildren(QDockWidget):
        if d.isFloating() or window.dockWidgetArea(d) == Qt.DockWidgetArea.NoDockWidgetArea:
            continue
        group = [d, *window.tabifiedDockWidgets(d)]
        if len(group) > 1:
            groups.append(sorted(g.windowTitle() for g in group))
    for bar in window.findChildren(QTabBar):
        if bar.parent() is not window:
            continue  # (a tab widget's own bar)
        titles = sorted(bar.tabText(i) for i in range(bar.count()))
        if titles not in groups:
            bar.hide()


def size_columns(window: QMainWindow) -> None:
    """The default widths of the columns and heights of their groups: a group needing a
    given height (its tallest panel's minimum) gets it, the others share the rest by
    :data:`SHARES`. Needs the window at its size (it is run again as the window first shows)."""
    for area, groups in DEFAULT_COLUMNS.items():
        placed = [d for d in (_dock(window, g[0]) for g in groups) if d is not None]
        if not placed:
            continue
        if area == BOTTOM:
            window.resizeDocks(placed[:1], [BOTTOM_HEIGHT], Qt.Orientation.Vertical)
            continue
        window.resizeDocks(placed[:1], [COLUMN_WIDTHS[area]], Qt.Orientation.Horizontal)
        heights = [_group_height(window, d) for d in placed]
        shares = [SHARES.get(d.objectName()[:-5], 0) for d in placed]
        if any(shares):
            free = max(0, window.height() - 120 - sum(h for h, sh in zip(heights, shares,
                                                                          strict=True)
                                                       if not sh))
            total = sum(shares)
            heights = [max(h, free * sh // total) if sh else h
                       for h, sh in zip(heights, shares, strict=True)]
        window.resizeDocks(placed, heights, Qt.Orientation.Vertical)


def _group_height(window: QMainWindow, first: QDockWidget) -> int:
    """The height a group asks for: the tallest minimum of its docks (so none scrolls)."""
    docks = [first, *window.tabifiedDockWidgets(first)]
    return max(_content_minimum(d).height() for d in docks)


def _content_minimum(dock: QDockWidget) -> QRect:
    inner = dock.widget()
    if isinstance(inner, QScrollArea) and inner.widget() is not None:
        inner = inner.widget()
    hint = inner.minimumSizeHint() if inner is not None else None
    return QRect(0, 0, hint.width(), hint.height()) if hint is not None else QRect()


def screen_of(widget: QWidget) -> QScreen | None:
    """The screen the widget is on (or will open on: its parent's), else the primary one."""
    for w in (widget, widget.parentWidget()):
        if w is not None and w.screen() is not None:
            return w.screen()
    return QGuiApplication.primaryScreen()


def fit_to_screen(widget: QWidget, margin: int = 0) -> None:
    """Shrink (and move) a top-level widget so that the whole of it, its frame aside, is on
    the available part of its screen; a widget that cannot shrink that far (its minimum size)
    is left at its minimum, which is what :func:`scrollable` is for."""
    screen = screen_of(widget)
    if screen is None:
        return
    free = screen.availableGeometry().adjusted(margin, margin, -margin, -margin)
    frame = widget.frameGeometry()
    extra_w = max(0, frame.width() - widget.width())
    extra_h = max(0, frame.height() - widget.height())
    width = min(widget.width(), free.width() - extra_w)
    height = min(widget.height(), free.height() - extra_h)
    if (width, height) != (widget.width(), widget.height()):
        widget.resize(max(width, widget.minimumWidth()), max(height, widget.minimumHeight()))
    geo = widget.frameGeometry()
    x = min(max(geo.x(), free.x()), free.right() - geo.width() + 1)
    y = min(max(geo.y(), free.y()), free.bottom() - geo.height() + 1)
    if (x, y) != (geo.x(), geo.y()):
        widget.move(max(x, free.x()), max(y, free.y()))


class _FitOnShow(QObject):
    """Every dialog and floating dock of the application is fitted to its screen as it
    shows (a dialog's first size comes from its content; a floating dock keeps the height it
    had docked, which could be taller than the screen)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # Qt override
        if event.type() == QEvent.Type.Show and (
                (isinstance(obj, QDialog) and obj.isWindow())
                or (isinstance(obj, QDockWidget) and obj.isFloating())):
            # Not during the Show event itself (resizing a window Qt is showing crashed a
            # window-modal dialog's open()): just after it, if the window still exists.
            QTimer.singleShot(0, obj, lambda w=obj: fit_to_screen(w) if shiboken6.isValid(w)
                              else None)
        return False


class _SizeOnFirstShow(QObject):
    """Sizes the default layout's columns once the window is on screen at its size."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # Qt override
        if event.type() == QEvent.Type.Show and isinstance(obj, QMainWindow):
            obj.removeEventFilter(self)
            QTimer.singleShot(0, lambda: size_columns(obj))
        return False


_fitter: _FitOnShow | None = None


def fit_windows_on_show() -> None:
    """Install the application-wide fitting of dialogs and floating docks (once)."""
    global _fitter
    app = QApplication.instance()
    if app is None or _fitter is not None:
        return
    _fitter = _FitOnShow(app)
    app.installEventFilter(_fitter)


def install(window: QMainWindow, saved_state: bool) -> QAction:
    """The default layout (when no saved one was restored), View → Reset layout, and the
    screen fitting of dialogs and floating docks. Returns the Reset layout action."""
    if not saved_state:
        apply_default_layout(window)
        if not window.isVisible():
            window.installEventFilter(_SizeOnFirstShow(window))
    fit_windows_on_show()
    action = QAction("&Reset layout", window)
    action.setStatusTip("Put every panel back where it is by default")
    action.triggered.connect(lambda _c=False: apply_default_layout(window))
    return action


# --- the check ----------------------------------------------------------------------------
def _visible_rect(widget: QWidget) -> QRect:
    """The part of ``widget`` (in global coordinates) that its ancestors do not clip."""
    rect = QRect(widget.mapToGlobal(widget.rect().topLeft()), widget.size())
    parent = widget.parentWidget()
    while parent is not None:
        rect = rect.intersected(QRect(parent.mapToGlobal(parent.rect().topLeft()),
                                      parent.size()))
        if parent.isWindow():
            break
        parent = parent.parentWidget()
    return rect


def unreachable_controls(root: QWidget, screen: QRect) -> list[str]:
    """The enabled, shown controls under ``root`` that are clipped by a container or lie
    (partly) off ``screen``, and the panel scroll bars that are showing; empty when every
    control can be reached without scrolling."""
    problems: list[str] = []
    for area in root.findChildren(QScrollArea):
        if not area.isVisibleTo(root) or isinstance(area, QAbstractItemView):
            continue
        for bar in (area.verticalScrollBar(), area.horizontalScrollBar()):
            if bar.isVisible() and bar.maximum() > 0:
                problems.append(f"{_name(area)}: a scroll bar shows ({bar.maximum()} px hidden)")
    for control in root.findChildren(QWidget):
        if not isinstance(control, CONTROL_TYPES) or isinstance(control, QTabBar):
            continue
        if not control.isVisibleTo(root) or not control.isEnabled():
            continue
        if _inside_item_view(control, root):
            continue  # an editor or a scroll bar's button inside a table
        full = QRect(control.mapToGlobal(control.rect().topLeft()), control.size())
        seen = _visible_rect(control)
        if seen != full:
            problems.append(f"{_name(control)}: clipped ({_fmt(seen)} of {_fmt(full)})")
        elif not screen.contains(full):
            problems.append(f"{_name(control)}: off the screen ({_fmt(full)})")
        elif isinstance(control, QAbstractItemView) and full.height() < MIN_ITEM_VIEW_HEIGHT:
            problems.append(f"{_name(control)}: only {full.height()} px tall")
    return problems


def _inside_item_view(widget: QWidget, root: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None and parent is not root:
        if isinstance(parent, QAbstractItemView | QAbstractSlider):
            return True
        parent = parent.parentWidget()
    return False


def _name(w: QWidget) -> str:
    text = w.text() if isinstance(w, QAbstractButton) else ""
    label = w.objectName() or text or w.toolTip()[:30]
    return f"{type(w).__name__}({label!r})"


def _fmt(r: QRect) -> str:
    return f"{r.width()}x{r.height()}+{r.x()}+{r.y()}"
