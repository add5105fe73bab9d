"""The detection dialog's choice of method: the classical detector, or a trained detector model
(one of the project's, or a file chosen from disk), and the device a model runs on.

Everything that touches a disk or torch runs in the background (``ui/common/tasks.py``): the
project's detector models are listed from their files' headers
(:func:`cellviewer.core.detect.models.project_detectors`), a chosen file is checked the same
way (a cell classifier is refused by name, with the header's own words), and the devices are
listed (``available_devices`` imports torch) only once a model is chosen, so a user who
detects classically never loads torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.detect.models import (
    DetectorModel,
    check_detector_file,
    project_detectors,
    registered_models,
)
from cellviewer.core.training.devices import AUTO, AUTO_LABEL
from cellviewer.ui.common import folders
from cellviewer.ui.common.tasks import POOL, TaskRunner

CLASSICAL = "classical"
BROWSE = "browse"
MODEL_FILE_FILTER = "CellViewer models (*.cvmodel);;All files (*)"


class MethodChooser(QWidget):
    """Method and device combos and a line saying what the chosen model is (or why a file was
    refused). ``changed()`` whenever the choice or its readiness changes."""

    changed = Signal()

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.runner = TaskRunner(POOL, max_threads=1, parent=self)
        self.models: dict[str, DetectorModel] = {}  # str(path) -> checked detector
        self._devices_listed = False
        self._previous = 0
        self.refusal = ""  # the last refused file's message

        self.method = QComboBox(self)
        self.method.setObjectName("detect_method")
        self.method.addItem("Classical (stain or contrast; no model)", CLASSICAL)
        self.method.addItem("Detector model file…", BROWSE)
        self.method.setToolTip("The classical detector needs no model; a trained detector "
                               "(python -m trainer train-detector) learnt your cells")
        self.device = QComboBox(self)
        self.device.setObjectName("detect_device")
        self.device.addItem(AUTO_LABEL, AUTO)
        self.device.setToolTip("Where a detector model runs: a GPU when there is one")
        self.tta = QCheckBox("Average 8 orientations (8× slower)", self)
        self.tta.setObjectName("detect_tta")
        self.tta.setToolTip("Test-time augmentation: the heatmap is the mean over the 4 "
                            "quarter turns of each tile, each also mirrored; it no longer "
                            "depends on the scan's orientation and is usually a little more "
                            "precise")
        self.info = QLabel("", self)
        self.info.setWordWrap(True)
        self.info.setObjectName("detect_model_info")

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.method, 3)
        row.addWidget(QLabel("on", self))
        row.addWidget(self.device, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.tta)
        layout.addWidget(self.info)
        self.method.activated.connect(self._on_activated)
        self._update()
        self._list_project_models()

    # --- what is chosen ----------------------------------------------------------------
    def is_classical(self) -> bool:
        return self.method.currentData() == CLASSICAL

    def model(self) -> DetectorModel | None:
        """The chosen detector model (None: classical)."""
        return self.models.get(str(self.method.currentData()))

    def device_choice(self) -> str:
        return str(self.device.currentData() or AUTO)

    def tta_choice(self) -> bool:
        """Whether a trained detector averages its 8 orientations (test-time augmentation)."""
        return self.model() is not None and self.tta.isChecked()

    def ready(self) -> bool:
        return self.is_classical() or self.model() is not None

    def busy(self) -> bool:
        return not self.runner.is_idle()

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """Process events until the background checks are delivered (tests)."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if self.runner.is_idle():
                return True
        return False

    # --- choosing ----------------------------------------------------------------------
    def _on_activated(self, index: int) -> None:
        if self.method.itemData(index) == BROWSE:
            self.method.setCurrentIndex(self._previous)
            self.browse()
            return
        self._previous = index
        self._update()

    def browse(self) -> None:
        start = folders.start_folder("model", self.store.path if self.store else None)
        path, _ = QFileDialog.getOpenFileName(self, "Choose a detector model", str(start),
                                              MODEL_FILE_FILTER)
        folders.remember("model", path)
        if path:
            self.choose_file(path)

    def choose_file(self, path: str | Path) -> None:
        """Check ``path`` in the background; a detector becomes the method, anything else is
        refused by name (the choice stays where it was)."""
        path = Path(path)
        self.info.setText(f"Reading {path.name}…")

        def check(_state) -> DetectorModel:
            return check_detector_file(path)

        self.runner.start(check, done=self._add_and_choose, failed=self._refused)
        self.changed.emit()

    def _add_and_choose(self, model: DetectorModel) -> None:
        index = self._add(model)
        self.method.setCurrentIndex(index)
        self._previous = index
        self.refusal = ""
        self._update()

    def _refused(self, message: str) -> None:
        self.refusal = message
        self.info.setText(f"Refused: {message}")
        self.changed.emit()

    def _add(self, model: DetectorModel) -> int:
        key = str(model.path)
        self.models[key] = model
        found = self.method.findData(key)
        if found >= 0:
            return found
        at = self.method.findData(BROWSE)
        self.method.insertItem(at, f"Detector: {model.name}", key)
        self.method.setItemData(at, str(model.path), Qt.ItemDataRole.ToolTipRole)
        return at

    def _list_project_models(self) -> None:
        store = self.store
        if store is None:
            return
        try:  # (the store's connection belongs to this thread; the files are read there)
            registered, project_path = registered_models(store), store.path
        except Exception:  # a listing that cannot be had leaves the file choice
            return

        def listing(_state) -> list[DetectorModel]:
            return project_detectors(registered=registered, project_path=project_path)

        def done(models: list[DetectorModel]) -> None:
            for m in models:
                self._add(m)
            self._update()

        self.runner.start(listing, done=done, failed=lambda _m: None)

    def _list_devices(self) -> None:
        if self._devices_listed:
            return
        self._devices_listed = True

        def devices(_state) -> list[tuple[str, str]]:
            from cellviewer.ui.predict.worker import available_devices

            return available_devices()

        def done(found: list[tuple[str, str]]) -> None:
            current = self.device_choice()
            self.device.clear()
            for key, label in found:
                self.device.addItem(label, key)
            at = self.device.findData(current)
            self.device.setCurrentIndex(max(at, 0))
            self.changed.emit()

        self.runner.start(devices, done=done, failed=lambda _m: None)

    def _update(self) -> None:
        model = self.model()
        self.device.setEnabled(model is not None)
        self.tta.setVisible(model is not None)
        if model is not None:
            self.info.setText(f"Trained detector: {model.describe()}.")
            self._list_devices()
        elif self.is_classical():
            self.info.setText(self.refusal and f"Refused: {self.refusal}")
        self.changed.emit()

    def set_enabled(self, on: bool) -> None:
        self.method.setEnabled(on)
        self.device.setEnabled(on and self.model() is not None)
        self.tta.setEnabled(on)
