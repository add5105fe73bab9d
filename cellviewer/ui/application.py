"""Creating the QApplication, the main window, and the offscreen start-up self-test."""

from __future__ import annotations

import os
import sys
import tempfile
import time

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from cellviewer.paths import icon_path


def ensure_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("CellViewer")
        app.setOrganizationName("CellViewer")
        app.setDesktopFileName("org.cellviewer.CellViewer")
        app.setWindowIcon(QIcon(str(icon_path())))
    return app  # type: ignore[return-value]


def run_app(project: str | None = None, demo: bool = False) -> int:
    from cellviewer.core.applog import install_log_file

    install_log_file()  # where the README says (cellviewer/core/applog.py)
    app = ensure_app()
    from cellviewer.ui.main_window import MainWindow

    window = MainWindow()
    window.install_tools()
    if demo:
        window.open_demo()
    elif project:
        window.open_path(project)
    window.show()
    return app.exec()


def selftest(screenshot: str | None = None) -> int:
    """Open the main window offscreen on the demo, check it knows the demo, exit 0 (CI smoke).

    Runs on its own data and settings folders, so it neither touches the user's demo copy
    nor waits on the question a demo already open in another CellViewer would raise."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="cellviewer-selftest-") as tmp:
        os.environ["CELLVIEWER_DATA_DIR"] = os.path.join(tmp, "data")
        os.environ["CELLVIEWER_SETTINGS_DIR"] = os.path.join(tmp, "settings")
        return _selftest(screenshot)


def _selftest(screenshot: str | None) -> int:
    t0 = time.perf_counter()
    app = ensure_app()
    from cellviewer.ui.main_window import MainWindow

    window = MainWindow()
    window.install_tools()
    window.open_demo()
    window.resize(1280, 800)
    window.show()
    app.processEvents()
    n_images, n_cells = window.image_count(), window.cell_count()
    elapsed = time.perf_counter() - t0
    if screenshot:
        window.grab().save(screenshot)
    window.close()
    ok = n_images > 0 and n_cells > 0
    print(f"selftest: {'ok' if ok else 'FAILED'}: {n_images} images, {n_cells} cells, "
          f"window up in {elapsed:.2f} s")
    return 0 if ok else 1
