"""The main window: the project's images, the view in the centre, docked panels around it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
)

from cellviewer.core.demo import demo_images, demo_points, load_class_set
from cellviewer.paths import demo_dir
from cellviewer.ui.settings import app_settings


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("CellViewer")
        self._images: list[Path] = []
        self._cells_per_image: Counter = Counter()
        self._classes: list[dict] = []

        self.image_list = QListWidget()
        dock = QDockWidget("Images", self)
        dock.setObjectName("images_dock")
        dock.setWidget(self.image_list)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        self.centre = QLabel("Open a project (File → Open) or try the demo (cellviewer --demo).")
        self.centre.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(self.centre)

        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("Open &demo project", self.open_demo)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close)

        geometry = app_settings().value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # --- opening ---------------------------------------------------------------------------
    def open_demo(self) -> None:
        folder = demo_dir()
        points = demo_points(folder)
        self._classes = load_class_set()["classes"]
        self._images = demo_images(folder)
        self._cells_per_image = Counter(str(folder / p.image) for p in points)
        self.image_list.clear()
        for path in self._images:
            n = self._cells_per_image.get(str(path), 0)
            QListWidgetItem(f"{path.name}  ({n} cells)", self.image_list)
        self.setWindowTitle("CellViewer: demo project")
        self.centre.setText(
            f"Demo project: {len(self._images)} images, {self.cell_count()} cells, "
            f"{len(self._classes)} classes"
        )
        self.statusBar().showMessage(f"{self.cell_count()} cells in {len(self._images)} images")

    def open_path(self, path: str) -> None:
        QMessageBox.information(self, "CellViewer", f"Opening {path} is not supported yet.")

    # --- queries used by the self-test and tests -------------------------------------------
    def image_count(self) -> int:
        return len(self._images)

    def cell_count(self) -> int:
        return sum(self._cells_per_image.values())

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        app_settings().setValue("main_window/geometry", self.saveGeometry())
        super().closeEvent(event)
