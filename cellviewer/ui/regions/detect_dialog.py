"""Analyze → Detect cells…: the classical detector or a trained detector model on a region, the
visible area or the image, in the background with a progress bar, cells/s, ETA and Cancel;
its detections become proposals (hollow markers) in one undoable step, and with "classify
with the active model" the active classifier then predicts them (the app's own prediction
job, so the proposals come with predictions).

A thin view over :mod:`cellviewer.core.detect.project` (classical) and
:mod:`cellviewer.core.detect.trained` (a model): the form makes a ``DetectParams`` or names a
model file and a device (:mod:`.detect_method`); the run and the write each go to a worker
(the write on a connection lent the project's session, so it is the user's own undoable
action). A trained detector is loaded in the run's worker (``ui/predict/detect_worker.py``:
torch is imported there, never on the GUI's start-up path). A cancelled run asks whether what
it found so far is kept (one step) or dropped (nothing written).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.detect.job import Detections, DetectProgress
from cellviewer.core.detect.params import DEFAULTS, DetectParams
from cellviewer.core.detect.project import add_to_project, area_for, run_detection
from cellviewer.core.detect.trained import (
    TrainedDetections,
    add_trained_to_project,
    run_trained_detection,
)
from cellviewer.core.formatting import format_duration
from cellviewer.core.regions.proposals import DEFAULT_MIN_DISTANCE_PX
from cellviewer.ui.common.tasks import DEDICATED, TaskRunner
from cellviewer.ui.regions.detect_method import MethodChooser

WHERE_TEXT = {"region": "the chosen region", "visible": "the visible area",
              "image": "the whole image"}


class DetectDialog(QDialog):
    """The detection form and its run (non-modal; the view stays usable meanwhile)."""

    def __init__(self, window: Any, region_uuid: str | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setWindowTitle("Detect cells")
        self.window = window
        self.region_uuid = region_uuid
        self.runner = TaskRunner(DEDICATED, parent=self)
        self.task = None
        self.classify_job = None
        self._busy = False
        self._ran_by = ""  # " by MODEL on DEVICE" for a trained run
        self.result_message = ""
        store = window.store
        self.image_id = window.current_image_id()
        record = store.image(self.image_id)
        self.mpp = record.mpp

        self.method = MethodChooser(store, self)
        self.method.changed.connect(self._method_changed)
        self.where = QComboBox(self)
        for key, text in WHERE_TEXT.items():
            self.where.addItem(text.capitalize(), key)
        if region_uuid is None:
            self.where.model().item(0).setEnabled(False)
            self.where.setCurrentIndex(self.where.findData("visible"))
        self.mode = QComboBox(self)
        self.mode.addItem("Nuclei (stain separation)", "nucleus")
        self.mode.addItem("Whole cells without a nucleus (e.g. red blood cells)", "whole-cell")
        self.stain = QComboBox(self)
        self.stain.addItem("Haematoxylin", "hematoxylin")
        self.stain.addItem("DAB (IHC)", "dab")
        self.diameter = QDoubleSpinBox(self)
        self.diameter.setDecimals(1)
        self.diameter.setRange(1.0, 500.0)
        self.unit_label = QLabel(self)
        self.sensitivity = QSlider(Qt.Orientation.Horizontal, self)
        self.sensitivity.setRange(0, 100)
        self.sensitivity.setValue(50)
        self.sensitivity.setToolTip("Higher finds more (and fainter) cells")
        self.sens_label = QLabel(self)
        self.sensitivity.valueChanged.connect(
            lambda v: self.sens_label.setText(f"{v / 100:.2f}"))
        self.min_distance = QDoubleSpinBox(self)
        self.min_distance.setRange(0.0, 200.0)
        self.min_distance.setValue(DEFAULT_MIN_DISTANCE_PX)
        self.min_distance.setSuffix(" px")
        self.min_distance.setToolTip("Detections closer than this to an existing marker are "
                                     "not added")

        self.classify = QCheckBox("Classify the proposals with the active model", self)
        self.classify.setObjectName("detect_and_classify")
        self.classify.setToolTip("After the detection, the model chosen in the Model panel "
                                 "predicts the new proposals (they stay proposals)")

        form = QFormLayout()
        form.addRow("Where", self.where)
        form.addRow("Method", self.method)
        form.addRow("Detect", self.mode)
        form.addRow("Stain", self.stain)
        row = QHBoxLayout()
        row.addWidget(self.diameter)
        row.addWidget(self.unit_label, 1)
        form.addRow("Expected diameter", row)
        srow = QHBoxLayout()
        srow.addWidget(self.sensitivity, 1)
        srow.addWidget(self.sens_label)
        form.addRow("Sensitivity", srow)
        form.addRow("Skip near a marker", self.min_distance)
        form.addRow("", self.classify)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.detect_button = QPushButton("Detect", self)
        self.detect_button.setDefault(True)
        self.cancel_button = QPushButton("Close", self)
        self.buttons.addButton(self.detect_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.detect_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel_or_close)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()
        self._classifier_session = _model_session(window)
        if self._classifier_session is not None:
            self._classifier_session.changed.connect(self._refresh_classify)
        self._refresh_classify()
        self._method_changed()

    # --- the form ------------------------------------------------------------------------
    def _mode_changed(self) -> None:
        mode = self.mode.currentData()
        self.stain.setEnabled(mode == "nucleus")
        d = DEFAULTS[mode]
        if self.mpp:
            self.diameter.setValue(d.diameter_um)
            self.unit_label.setText("µm")
        else:
            self.diameter.setValue(d.diameter_px)
            self.unit_label.setText("px (the image has no pixel size)")

    def _method_changed(self) -> None:
        """The classical settings apply to the classical detector only; Detect waits for a
        model file to be checked."""
        classical = self.method.is_classical()
        for w in (self.mode, self.diameter, self.sensitivity):
            w.setEnabled(classical and not self.running())
        self.stain.setEnabled(classical and not self.running()
                              and self.mode.currentData() == "nucleus")
        self.detect_button.setEnabled(self.method.ready() and not self.running())

    def _refresh_classify(self) -> None:
        choice = self._classifier()
        if choice is None:
            self.classify.setChecked(False)
            self.classify.setEnabled(False)
            self.classify.setText("Classify the proposals with the active model (choose one "
                                  "in the Model panel)")
        else:
            self.classify.setEnabled(not self.running())
            self.classify.setText(f"Classify the proposals with the active model "
                                  f"({choice.name})")

    def _classifier(self):
        session = self._classifier_session
        return None if session is None else session.choice

    def params(self) -> DetectParams:
        return DetectParams(mode=self.mode.currentData(), stain=self.stain.currentData(),
                            diameter=self.diameter.value(),
                            unit="um" if self.mpp else "px",
                            sensitivity=self.sensitivity.value() / 100)

    def running(self) -> bool:
        """From Detect until the proposals are written (and, with "classify", predicted)."""
        return self._busy

    # --- the run -------------------------------------------------------------------------
    def start(self) -> bool:
        """Detect with the form's settings (in the background)."""
        window, store = self.window, self.window.store
        if self.running() or store is None:
            return False
        try:
            window.session.require_user()  # asked now, not after a minute of detection
            area = area_for(store, self.image_id, self.where.currentData(),
                            region_uuid=self.region_uuid,
                            visible=window.view.visible_image_rect())
        except Exception as exc:
            self.status.setText(str(exc))
            return False
        params, image_id = self.params(), self.image_id
        model = self.method.model()
        if model is None and not self.method.is_classical():
            self.status.setText("Choose a detector model first.")
            return False
        device, tta = self.method.device_choice(), self.method.tta_choice()

        def work(state):
            if model is not None:  # loaded here, off the GUI thread (torch is imported here)
                from cellviewer.ui.predict.detect_worker import loaded_detector

                state.set_status(f"Loading {model.path.name}…")
                detector = loaded_detector(model.path, device)
            reader = store.connection_for_worker()
            try:
                if model is not None:
                    return run_trained_detection(reader, image_id, area, detector,
                                                 progress=state.set_progress,
                                                 cancelled=state.is_interruption_requested,
                                                 tta=tta)
                return run_detection(reader, image_id, area, params,
                                     progress=state.set_progress,
                                     cancelled=state.is_interruption_requested)
            finally:
                reader.close()

        self._set_running(True)
        by = f" with {model.path.name}" if model is not None else ""
        self.status.setText(f"Detecting in {WHERE_TEXT[self.where.currentData()]}{by}…")
        self.task = self.runner.start(work, done=self._found, failed=self._failed,
                                      progress=self._on_progress,
                                      status=self.status.setText)
        return True

    def cancel_or_close(self) -> None:
        if self.classify_job is not None and self.classify_job.is_running():
            self.classify_job.cancel()
            self.status.setText("Stopping the classification after the cells under way…")
        elif self.task is not None:
            self.task.state.request_interruption()
            self.status.setText("Stopping after the tiles under way…")
        else:
            self.reject()

    def _on_progress(self, p: DetectProgress) -> None:
        self.progress.setValue(round(1000 * p.fraction))
        eta = (p.elapsed_s / p.fraction * (1 - p.fraction)) if p.fraction > 0 else math.nan
        self.status.setText(f"{p.cells:,} cells · {p.cells_per_s:,.0f} cells/s · "
                            f"{p.megapixels_per_s:.1f} MP/s · tile {p.tiles_done} of "
                            f"{p.tiles_total} · {format_duration(eta)} left")

    def _found(self, found: Detections | TrainedDetections) -> None:
        self._ran_by = (f"; detected by {Path(found.model).name} on {found.device}"
                        if isinstance(found, TrainedDetections) else "")
        if found.partial and len(found):
            answer = QMessageBox.question(
                self, "Detection cancelled",
                f"The detection was cancelled after {found.tiles_done} of "
                f"{found.tiles_total} tiles and found {len(found):,} cells so far. "
                "Keep them as proposals (one step you can undo)?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.Yes)
            if answer != QMessageBox.StandardButton.Yes:
                self.task = None
                self._set_running(False)
                self.status.setText("Cancelled: nothing was added.")
                return
        store, image_id, gap = self.window.store, self.image_id, self.min_distance.value()

        def write(_state):
            writer = store.connection_for_worker()
            try:
                if isinstance(found, TrainedDetections):
                    return add_trained_to_project(writer, image_id, found, gap)
                return add_to_project(writer, image_id, found, gap)
            finally:
                writer.close()

        self.status.setText(f"Adding {len(found):,} proposals…")
        self.window.hold_edits(f"the detection's {len(found):,} proposals")
        self.task = self.runner.start(write, done=self._added, failed=self._failed)

    def _added(self, result) -> None:
        self.task = None
        self.window.release_edits(changed=True)
        self.progress.setValue(1000)
        self.result_message = result.message + self._ran_by
        self.window.show_status(result.message.capitalize(), 8000)
        if self.classify.isChecked() and result.ids and self._start_classifying(result):
            return
        self._set_running(False)
        self.status.setText(result.message.capitalize() + ". Review them: Accept (Ctrl+Shift+A"
                            " or the Regions panel), Delete, or click to add missing cells.")

    # --- detect and classify -------------------------------------------------------------
    def _start_classifying(self, result) -> bool:
        """The active classifier predicts the new proposals (the app's prediction job, which
        stores the predictions per model as for any cell); False when it cannot start."""
        session, choice = self._classifier_session, self._classifier()
        if session is None or choice is None:
            return False
        try:
            job = session.predict_scope([self.image_id], list(result.ids))
        except RuntimeError as exc:  # e.g. a prediction already running
            self.status.setText(f"{result.message.capitalize()}; not classified: {exc}")
            return False
        self.classify_job = job
        n = len(result.ids)
        self.progress.setValue(0)
        self.status.setText(f"{result.message.capitalize()}. Classifying {n:,} proposals "
                            f"with {choice.name} (loading the model)…")
        job.progress.connect(self._on_classify_progress)
        job.finished.connect(self._classified)
        job.failed.connect(self._classify_failed)
        return True

    def _on_classify_progress(self, p) -> None:
        self.progress.setValue(round(1000 * p.fraction))
        self.status.setText(f"Classifying: {p.done:,} of {p.total:,} proposals · "
                            f"{p.cells_per_s:,.0f} cells/s · {format_duration(p.eta_s)} left")

    def _classified(self, summary) -> None:
        self._set_running(False)
        self.progress.setValue(1000)
        verb = "classified" if not summary.cancelled else "classification cancelled after"
        self.result_message += f"; {verb} {summary.done:,} of {summary.total:,}"
        self.status.setText(self.result_message.capitalize() + ". Review them: Accept "
                            "(Ctrl+Shift+A or the Regions panel), Delete, or click to add "
                            "missing cells.")

    def _classify_failed(self, message: str) -> None:
        self._set_running(False)
        self.status.setText(f"{self.result_message.capitalize()}, but the classification "
                            f"failed: {message}")

    def _failed(self, message: str) -> None:
        self.task = None
        if self.window.edits_held():
            self.window.release_edits(changed=True)
        self._set_running(False)
        self.status.setText(f"Detection failed: {message}")

    def _set_running(self, on: bool) -> None:
        self._busy = on
        self.cancel_button.setText("Cancel" if on else "Close")
        for w in (self.where, self.min_distance):
            w.setEnabled(not on)
        self.method.set_enabled(not on)
        self._method_changed()
        self._refresh_classify()

    def wait_idle(self, timeout_ms: int = 60_000) -> bool:
        return self.runner.wait(timeout_ms)

    def done(self, code: int) -> None:  # closing asks a run to stop first
        if self.classify_job is not None and self.classify_job.is_running():
            self.classify_job.cancel()
            self.classify_job.wait(30_000)
        if self.task is not None:
            self.task.state.request_interruption()
            self.runner.close(30_000)
        self.method.runner.close(10_000)
        if self._classifier_session is not None:
            with contextlib.suppress(RuntimeError, TypeError):  # (already gone)
                self._classifier_session.changed.disconnect(self._refresh_classify)
        super().done(code)


def _model_session(window: Any):
    """The app's classifier choice (the Model panel's session), None without the prediction
    tools (a window with the Regions tool alone)."""
    tools = getattr(window, "prediction_tools", None)
    return getattr(tools, "session", None)
