"""What the window shows before a project is open: new, open, demo, and the recent projects."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class StartPage(QWidget):
    newRequested = Signal()
    openRequested = Signal()
    demoRequested = Signal()
    recentRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("<h1>CellViewer</h1><p>Classify single cells from 40×40-pixel patches."
                       "</p>", self)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        new = QPushButton("New project…", self)
        open_ = QPushButton("Open project…", self)
        demo = QPushButton("Open the demo project", self)
        new.clicked.connect(self.newRequested)
        open_.clicked.connect(self.openRequested)
        demo.clicked.connect(self.demoRequested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (new, open_, demo):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.recent = QListWidget(self)
        self.recent.setMaximumWidth(640)
        self.recent.itemActivated.connect(
            lambda item: self.recentRequested.emit(item.data(Qt.ItemDataRole.UserRole)))
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addLayout(buttons)
        layout.addSpacing(16)
        self.recent_label = QLabel("Recent projects (double-click to open):", self)
        layout.addWidget(self.recent_label, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.recent, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for p in paths:
            item = QListWidgetItem(f"{Path(p).name}    {Path(p).parent}")
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setToolTip(p)
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.recent_label.setVisible(bool(paths))
