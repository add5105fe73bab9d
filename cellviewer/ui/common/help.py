"""Help → Keyboard shortcuts and Help → About.

The shortcut list is generated from the window's actions when it opens (every menu, submenu
and toolbar action with a shortcut, under the menu path it is found in) plus the keys the
slide view and the class list handle themselves, so it is never out of date: a new action
with a shortcut shows up by itself. About names the versions a bug report needs (CellViewer,
Python, Qt/PySide6, PyTorch, OpenSlide) and the device training would use; PyTorch's version
is read from its installed metadata (importing torch takes seconds and the GUI's start-up
never does), the device is asked of a trainer process in the background.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from importlib import metadata

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
)

#: keys handled by the slide view, the gallery and the window rather than by actions
VIEW_KEYS: list[tuple[str, str]] = [
    ("Slide view", "F", "Fit the image to the window"),
    ("Slide view", "A", "Add-cells tool on/off (Ctrl+click adds in any tool)"),
    ("Slide view", "M", "Measure tool on/off: drag to measure a distance in µm"),
    ("Slide view", "R", "Region tool on/off: drag a rectangle, or click a polygon's corners"),
    ("Region tool", "Double-click / Enter", "Close the polygon being drawn"),
    ("Region tool", "Backspace / Esc", "Take back the last corner / drop the region"),
    ("Regions", "Drag a corner handle", "Move that corner of the selected region (every "
     "region's with the region tool); Ctrl+Z undoes it"),
    ("Slide view", "+ / −", "Zoom in / out (or the mouse wheel)"),
    ("Slide view", "Arrow keys", "Pan"),
    ("Slide view", "Esc", "Select tool, clear the selection and the ruler"),
    ("Slide view", "Shift+drag", "Select cells in a rectangle"),
    ("Selection", "1 … 9", "Label the selected cells with the class of that key"),
    ("Selection", "Shift+1 … Shift+9", "Label with classes 10–18 (see the class list)"),
    ("Selection", "Delete / Backspace", "Delete the selected cells"),
    ("Gallery", "Arrow keys, Shift+arrows", "Move, extend the selection"),
    ("Gallery", "Ctrl+A", "Select every cell in the gallery"),
]


def action_shortcuts(window: QMainWindow) -> list[tuple[str, str, str]]:
    """(where, shortcut, what) for every action of the window's menus and toolbars that has
    a shortcut, in menu order; the text without its "&" mnemonics."""
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()

    def walk(actions: Sequence[QAction], where: str) -> None:
        for action in actions:
            sub = action.menu()
            if isinstance(sub, QMenu):
                walk(sub.actions(), f"{where} → {_plain(sub.title())}" if where
                     else _plain(sub.title()))
                continue
            if id(action) in seen or action.isSeparator():
                continue
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText)
                    for k in action.shortcuts() if not k.isEmpty()]
            if keys:
                seen.add(id(action))
                rows.append((where, ", ".join(keys), _plain(action.text())))

    walk(window.menuBar().actions(), "")
    for bar in window.findChildren(QToolBar):
        walk(bar.actions(), f"Toolbar {bar.windowTitle()}")
    return rows


def class_key_rows(classes: Sequence) -> list[tuple[str, str, str]]:
    """(where, key, what) for each class that has a key (ClassStyle-like: name, key)."""
    return [("Classes", c.key, f"Label as {c.name}") for c in classes if c.key]


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


class ShortcutsDialog(QDialog):
    """A searchable table of every shortcut: actions, the view's keys, the class keys."""

    def __init__(self, rows: list[tuple[str, str, str]], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = rows
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter (an action, a key, a menu)")
        self.filter.setClearButtonEnabled(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Key", "Does", "Where"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.filter)
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.filter.textChanged.connect(self._fill)
        self._fill("")
        self.resize(640, 560)

    def _fill(self, text: str) -> None:
        needle = text.strip().lower()
        shown = [r for r in self.rows if not needle or needle in " ".join(r).lower()]
        self.table.setRowCount(len(shown))
        for i, (where, key, what) in enumerate(shown):
            for j, value in enumerate((key, what, where)):
                self.table.setItem(i, j, QTableWidgetItem(value))


def installed_version(distribution: str) -> str:
    """An installed package's version from its metadata (never importing it)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def openslide_versions() -> str:
    """openslide-python's version and the OpenSlide library's, when it loads."""
    python = installed_version("openslide-python")
    if python == "not installed":
        return python
    try:
        import openslide

        return f"{openslide.__library_version__} (openslide-python {python})"
    except Exception as exc:  # the C library is missing or broken: say so
        return f"library not loaded ({exc}); openslide-python {python}"


def version_lines() -> list[tuple[str, str]]:
    """What About lists, without importing torch."""
    return [
        ("CellViewer", installed_version("cellviewer")),
        ("Python", platform.python_version()),
        ("Qt", f"{qVersion()} (PySide6 {pyside_version})"),
        ("PyTorch", installed_version("torch")),
        ("OpenSlide", openslide_versions()),
        ("System", f"{platform.system()} {platform.release()} ({platform.machine()})"),
    ]


class AboutDialog(QDialog):
    """The versions, and the device (filled in when the trainer has answered)."""

    def __init__(self, lines: list[tuple[str, str]], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About CellViewer")
        self.lines = list(lines)
        self.label = QLabel()
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<h3>CellViewer</h3>Single-cell classification in "
                             "histopathology images."))
        lay.addWidget(self.label)
        lay.addWidget(buttons)
        self.set_device("asking the trainer…")

    def set_device(self, text: str) -> None:
        rows = [*self.lines, ("Device", text)]
        self.label.setText("<table>" + "".join(
            f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in rows)
            + "</table>")
        self.adjustSize()  # (the device line may wrap once the trainer has answered)

    def text(self) -> str:
        return self.label.text()


def device_text(status) -> str:
    """The device line from a DeviceStatus (cellviewer.core.training.devices): what was
    found, the GPUs' names, or why none is used."""
    names = "; ".join(status.cuda)
    return status.note() + (f" ({names})" if names else "")


def _probe_devices():
    from cellviewer.core.training.devices import probe_devices

    return probe_devices()


#: how About asks for the device (a trainer process; tests give a quick stand-in)
DEVICE_PROBE: Callable[[], object] = _probe_devices


def install(window: QMainWindow, classes: Callable[[], Sequence],
            submit: Callable[..., object]) -> dict[str, QAction]:
    """Help → Keyboard shortcuts (F1) and About. ``classes()`` gives the class keys;
    ``submit(fn, done, failed)`` runs the device question in the background."""
    menu = window.menu("&Help")  # type: ignore[attr-defined]
    shortcuts = QAction("&Keyboard shortcuts", window)
    shortcuts.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))
    about = QAction("&About CellViewer", window)
    about.setMenuRole(QAction.MenuRole.AboutRole)

    def show_shortcuts() -> ShortcutsDialog:
        rows = action_shortcuts(window) + [(w, k, d) for w, k, d in VIEW_KEYS] + \
            class_key_rows(classes())
        dialog = ShortcutsDialog(rows, window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        window.shortcuts_dialog = dialog  # type: ignore[attr-defined]
        dialog.show()
        return dialog

    def show_about() -> AboutDialog:
        dialog = AboutDialog(version_lines(), window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        window.about_dialog = dialog  # type: ignore[attr-defined]

        def done(status) -> None:
            if window.about_dialog is dialog:  # type: ignore[attr-defined]
                dialog.set_device(device_text(status))

        def failed(message: str) -> None:
            if window.about_dialog is dialog:  # type: ignore[attr-defined]
                dialog.set_device(f"unknown ({message})")

        submit(lambda: DEVICE_PROBE(), done, failed)
        dialog.show()
        return dialog

    shortcuts.triggered.connect(lambda _c=False: show_shortcuts())
    about.triggered.connect(lambda _c=False: show_about())
    menu.addAction(shortcuts)
    menu.addSeparator()
    menu.addAction(about)
    return {"shortcuts": shortcuts, "about": about}
