"""Run by tests/cellviewer/ui/test_layout.py in a child process, on an offscreen screen of the
size given (the offscreen platform's screen is fixed when the application starts, so the test
cannot change it in its own process): opens the demo with the default layout, the window at the
screen's available geometry, raises every dock in its tab group, opens the training dialog, and
prints one JSON object: {dock or dialog name: [problems]} (see
cellviewer.ui.common.layout.unreachable_controls)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def main(width: int, height: int, title_bar: bool = True) -> int:
    folder = tempfile.mkdtemp(prefix="cellviewer-layout-")
    config = os.path.join(folder, "screen.json")
    with open(config, "w", encoding="utf-8") as f:
        json.dump({"windowFrameMargins": False,
                   "screens": [{"name": "probe", "x": 0, "y": 0, "width": width,
                                "height": height, "logicalDpi": 96, "logicalBaseDpi": 96,
                                "dpr": 1}]}, f)
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"
    os.environ["CELLVIEWER_SETTINGS_DIR"] = os.path.join(folder, "settings")
    os.environ["CELLVIEWER_DATA_DIR"] = os.path.join(folder, "data")
    os.environ.setdefault("CELLVIEWER_USER", "layout-probe")
    from PySide6.QtWidgets import QApplication, QDockWidget

    from cellviewer.ui.application import ensure_app
    from cellviewer.ui.common.layout import unreachable_controls
    from cellviewer.ui.main_window import MainWindow

    app = ensure_app()
    screen = app.primaryScreen().availableGeometry()
    out: dict[str, object] = {"screen": [screen.width(), screen.height()]}
    w = MainWindow()
    w.install_tools()
    w.open_demo()
    w.show()
    # the window's first size on this screen (the title bar a window manager adds aside)
    w.setGeometry(screen.adjusted(0, 0, 0, -30) if title_bar else screen)
    w.wait_idle(10_000)
    w.training.show_runs()  # the training dock too (hidden by default)
    for dock in w.findChildren(QDockWidget):
        if not dock.isVisible():
            out[dock.objectName()] = ["hidden in the default layout"]
            continue
        dock.raise_()
        for _ in range(5):
            QApplication.processEvents()
        out[dock.objectName()] = unreachable_controls(dock, screen)
    window_rect = w.frameGeometry()
    out["window_fits"] = screen.contains(window_rect)
    dialog = w.training.new_run()
    deadline = time.monotonic() + 60  # a loaded machine; never a figure
    while time.monotonic() < deadline and not dialog.ready():
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(5):
        QApplication.processEvents()
    out["training_dialog"] = unreachable_controls(dialog, screen)
    out["training_dialog_fits"] = screen.contains(dialog.frameGeometry())
    dialog.close()
    print(json.dumps(out))
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]), int(sys.argv[2])))
