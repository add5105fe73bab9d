"""The real main window on the demo project, shown and idle: the fixture of the tests of the
viewer's daily-use features (display, finding, padded crops)."""

from __future__ import annotations

from cellviewer.ui.main_window import MainWindow

WAIT_MS = 60_000  # generous: a loaded CI machine, never a figure


def open_demo_window(qtbot, size: tuple[int, int] = (1200, 800)) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.install_tools()
    assert w.open_demo()
    w.resize(*size)
    w.show()
    qtbot.waitUntil(lambda: w.current_image_source() is not None, timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)
    return w
