"""The window freezes what is long-lived out of the garbage collector's full passes."""

from __future__ import annotations

import gc

from cellviewer.ui.main_window import MainWindow


def test_installing_the_tools_freezes_the_long_lived_objects(qtbot):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    window = MainWindow()
    qtbot.addWidget(window)
    window.install_tools()
    assert gc.get_freeze_count() > 10_000  # Qt's wrappers, the tools, the modules
