"""The default layout fits a laptop's screen, Reset layout brings it back, the user's own
layout is restored, and dialogs and floating docks fit the screen they open on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtWidgets import QDockWidget

from cellviewer.ui.common import layout
from cellviewer.ui.main_window import MainWindow

REPO = Path(__file__).resolve().parents[3]
PROBE = Path(__file__).with_name("layout_probe.py")


def _probe(width: int, height: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(PROBE), str(width), str(height)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_control_of_every_dock_is_reachable_at_1366x768():
    """Each dock raised in its tab group: every enabled control lies wholly inside its
    viewport and the screen (mapped geometry, not isVisible), no panel shows a scroll bar;
    the training dialog fits the screen with all its controls."""
    out = _probe(1366, 768)
    assert out["screen"] == [1366, 768]
    docks = {k: v for k, v in out.items() if k.endswith("_dock")}
    assert {"images_dock", "classes_dock", "details_dock", "gallery_dock", "model_dock",
            "review_dock", "blur_preview_dock", "training_dock", "display_dock"} <= set(docks)
    assert {k: v for k, v in docks.items() if v} == {}
    assert out["window_fits"]
    assert out["training_dialog"] == []
    assert out["training_dialog_fits"]


def _window(qtbot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.install_tools()
    return w


def test_reset_layout_docks_everything_back(qtbot):
    w = _window(qtbot)
    w.show()
    model = w.findChild(QDockWidget, "model_dock")
    details = w.findChild(QDockWidget, "details_dock")
    model.setFloating(True)
    w.removeDockWidget(w.findChild(QDockWidget, "gallery_dock"))
    w.reset_layout_action.trigger()
    assert not model.isFloating()
    assert model in w.tabifiedDockWidgets(details)
    gallery = w.findChild(QDockWidget, "gallery_dock")
    assert gallery.isVisible() and w.dockWidgetArea(gallery) == layout.BOTTOM
    assert not w.findChild(QDockWidget, "training_dock").isVisible()
    assert "&Reset layout" in [a.text() for a in w.menu("&View").actions()]


def test_the_users_layout_is_saved_and_restored(qtbot):
    w = _window(qtbot)
    w.show()
    w.findChild(QDockWidget, "images_dock").hide()
    w.close()
    again = _window(qtbot)
    again.show()
    assert not again.findChild(QDockWidget, "images_dock").isVisible()  # not the default
    again.reset_layout_action.trigger()
    assert again.findChild(QDockWidget, "images_dock").isVisible()


def test_a_dialog_taller_than_the_screen_is_fitted_on_show(qtbot):
    from PySide6.QtWidgets import QDialog

    layout.fit_windows_on_show()
    dialog = QDialog()
    qtbot.addWidget(dialog)
    free = dialog.screen().availableGeometry()
    dialog.resize(free.width() + 400, free.height() + 300)
    dialog.move(free.x() + 200, free.y() + 200)
    dialog.show()
    qtbot.waitUntil(lambda: free.contains(dialog.frameGeometry()), timeout=3000)
