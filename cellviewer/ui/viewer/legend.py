"""The legend over the slide view: what the markers' colours mean in the current colouring.

By label or by prediction: each class's colour and name (and white "unlabelled" or grey "no
prediction"); in agreement mode: green where label and prediction agree, red where they
differ, grey where either is missing. It sits in the view's bottom-left corner, lets the mouse
through, and View → Show legend (Ctrl+Shift+L) hides it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QWidget

from cellviewer.ui.viewer.markers import (
    AGREE_COLOUR,
    DISAGREE_COLOUR,
    NO_PREDICTION_COLOUR,
    UNLABELLED_COLOUR,
)

COLUMN_ROWS = 8  # more entries than this: two columns, so the legend stays short
MAX_ROWS = 20  # more classes than this: the rest are summarised ("… 4 more")


def legend_entries(mode: str, classes: Sequence) -> list[tuple[str, str]]:
    """(colour, text) rows for a colour mode ("label", "prediction", "agreement") and the
    project's classes (ClassStyle-like: name, color)."""
    if mode == "agreement":
        return [(AGREE_COLOUR, "label and prediction agree"),
                (DISAGREE_COLOUR, "label and prediction differ"),
                (NO_PREDICTION_COLOUR, "no label or no prediction")]
    rows = [(c.color, c.name) for c in classes]
    if len(rows) > MAX_ROWS:
        rows = rows[:MAX_ROWS - 1] + [("", f"… {len(rows) - MAX_ROWS + 1} more")]
    last = (UNLABELLED_COLOUR, "unlabelled") if mode == "label" else \
        (NO_PREDICTION_COLOUR, "no prediction")
    return [*rows, last]


def legend_html(mode: str, classes: Sequence) -> str:
    title = {"label": "Colour: label", "prediction": "Colour: prediction",
             "agreement": "Colour: agreement"}.get(mode, mode)
    entries = legend_entries(mode, classes)
    columns = 1 if len(entries) <= COLUMN_ROWS else 2  # a long class list: two columns
    per = -(-len(entries) // columns)

    def cell(entry: tuple[str, str] | None) -> str:
        if entry is None:
            return "<td></td><td></td>"
        c, t = entry
        dot = f"<span style='color:{c}'>&#9679;</span>" if c else ""
        return f"<td>{dot}</td><td>{t}&nbsp;&nbsp;</td>"

    rows = "".join(
        "<tr>" + "".join(cell(entries[i + k * per] if i + k * per < len(entries) else None)
                         for k in range(columns)) + "</tr>"
        for i in range(per))
    return f"<b>{title}</b><table cellspacing=0 cellpadding=0>{rows}</table>"


class Legend(QLabel):
    """A translucent label in the bottom-left corner of its parent (the slide view)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("legend")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setStyleSheet("QLabel#legend { background: rgba(30, 30, 30, 190); color: white;"
                           " border-radius: 4px; padding: 4px; font-size: 8pt; }")
        self.setTextFormat(Qt.TextFormat.RichText)
        self.mode = "label"
        self.entries: list[tuple[str, str]] = []
        parent.installEventFilter(self)

    def show_for(self, mode: str, classes: Sequence) -> None:
        self.mode = mode
        self.entries = legend_entries(mode, classes)
        html = legend_html(mode, classes)
        if html != self.text():  # laying out the rich text is the cost (tens of ms at start-up,
            self.setText(html)  # where the window's signals ask for the same legend again)
            self.adjustSize()
        self._place()

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.move(8, max(0, parent.height() - self.height() - 8))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # Qt override
        if event.type() == QEvent.Type.Resize:
            self._place()
        return False


def install(window, classes: Callable[[], Sequence]) -> QAction:
    """The legend on ``window.view``, following the colour mode and the classes; View → Show
    legend toggles it. Returns that action."""
    legend = Legend(window.view)
    window.legend = legend

    def refresh(*_args) -> None:
        legend.show_for(window.color_mode(), classes())

    window.colorModeChanged.connect(refresh)
    window.projectChanged.connect(refresh)
    window.session.events.store_changed.connect(
        lambda event: refresh() if "classes" in event.kinds else None)
    action = QAction("Show &legend", window, checkable=True, checked=True)
    action.setShortcut(QKeySequence("Ctrl+Shift+L"))
    action.toggled.connect(legend.setVisible)
    window.menu("&View").addAction(action)
    refresh()
    legend.show()
    return action
