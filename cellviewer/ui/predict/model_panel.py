"""The model panel: choose a model and a device, see what the model is, predict cells with it.

- **Model**: the project's models (``store.models()``: trained runs registered by the training
  panel, and files added here), the project's finished training runs not registered yet, or a
  model file from disk (``Open model file…``). The panel shows the architecture, the classes,
  the training data size and the validation metrics, read from the model file's metadata (no
  weights are loaded for that) in a background thread.
- **Classes**: a model whose classes are not the project's (same names, same order) is refused
  with a message that says what differs, unless the user agrees to map the classes by name
  (``cellviewer.core.predict.job.match_classes``); the mapping is kept with the choice so the
  prediction colours, the review queue and "accept prediction" use project classes.
- **Device**: ``auto``, each CUDA GPU by name, Apple MPS, CPU (listed in the background, as it
  imports torch); the device actually in use is shown once the model is loaded.
- **Predict**: the current image, selected images or the whole project, in a background
  ``PredictionJob``: progress bar, cells/s, ETA, Cancel. Results are stored in the project per
  model chunk by chunk, and every chunk is announced (``ModelSession.chunkPredicted``) so the
  slide view recolours as results arrive.

``ModelSession`` is the app's current model choice, shared by the blur preview and the review
queue; ``ModelPanel`` is its view. Neither imports torch at module level.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core.formatting import format_duration
from cellviewer.core.predict.job import ClassMatch, PredictProgress, PredictSummary, match_classes
from cellviewer.core.predict.model_info import (
    ModelChoice,
    default_model_name,
    describe_meta,
    read_model_info,
)
from cellviewer.core.project.session import ProjectSession
from cellviewer.core.sources.replaced import stale_marks
from cellviewer.core.training.devices import AUTO, AUTO_LABEL
from cellviewer.ui.common import folders
from cellviewer.ui.common.image_changed import (
    ACCEPTED,
    RELINKED,
    ImageChangedDialog,
    ask_about_changed_image,
)
from cellviewer.ui.common.workers import BackgroundRunner
from cellviewer.ui.predict.worker import PREDICTORS, PredictionJob, SerialisedPredictor

MODEL_FILE_FILTER = "CellViewer models (*.cvmodel);;All files (*)"

SCOPE_IMAGE, SCOPE_IMAGES, SCOPE_PROJECT, SCOPE_SELECTION = "image", "images", "project", "cells"
SCOPES = (
    (SCOPE_IMAGE, "Current image"),
    (SCOPE_SELECTION, "Selected cells"),
    (SCOPE_IMAGES, "Selected images…"),
    (SCOPE_PROJECT, "Whole project"),
)


class ModelSession(QObject):
    """The current model and device of the app, shared by the panels.

    Signals: ``changed()`` when the model, the device or the class mapping changes;
    ``chunkPredicted(ChunkResult)`` for every chunk a batch job stored (recolour from it);
    ``jobFinished(PredictSummary)``; ``deviceInUse(str)`` once a model is loaded.
    """

    changed = Signal()
    chunkPredicted = Signal(object)
    jobStarted = Signal()
    jobProgress = Signal(object)
    jobFinished = Signal(object)
    jobFailed = Signal(str)
    # (ImageChangedError, PredictionJob): a job stopped at a replaced image, nothing predicted
    jobImageChanged = Signal(object, object)
    deviceInUse = Signal(str)

    def __init__(self, project: ProjectSession | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        # the app's project session: its store, and the active model kept in the project
        self.project = project if project is not None else ProjectSession()
        self.choice: ModelChoice | None = None
        self.device = "auto"
        self.job: PredictionJob | None = None

    @property
    def store(self) -> Any:
        return self.project.store

    def set_store(self, store: Any) -> None:
        """Work on ``store`` without a window (tests, benchmarks): the project session adopts
        it, and the panel follows as it does when the window opens a project."""
        self.project.attach(store)
        self.reset()

    # --- choosing ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Another project: no model chosen until its active model is loaded again."""
        if self.job is not None:
            self.job.cancel()
        self.choice = None
        self.changed.emit()

    def project_classes(self) -> tuple[list[str], list[int]]:
        if self.store is None:
            return [], []
        records = list(self.store.classes())
        return [c.name for c in records], [int(c.id) for c in records]

    def check_classes(self, meta: dict) -> ClassMatch:
        names, _ = self.project_classes()
        return match_classes(list(meta.get("classes", [])), names)

    def choose(self, path: str | Path, meta: dict, *, name: str | None = None,
               model_id: int | None = None, allow_mapping: bool = False) -> ModelChoice:
        """Make a model the current one. Raises ``ValueError`` (with a message for the user)
        when the model has classes the project does not (see ``ClassMatch.compatible``) and
        mapping by name is not allowed or gives nothing. A model not yet in the project is
        added to it (``store.add_model``, which matches the classes by name)."""
        refusal = not_a_classifier(path, meta)
        if refusal:
            raise ValueError(refusal)
        match = self.check_classes(meta)
        if not match.compatible and not (allow_mapping and match.mappable):
            raise ValueError(match.describe())
        path = Path(path)
        name = name or default_model_name(path)
        class_ids: list[int | None] = []
        if self.store is not None:
            if model_id is None:
                model_id = self._find_or_add_model(path, name, meta)
            record = self.store.model(model_id)
            name, class_ids = record.name, list(record.class_ids)
        self.choice = ModelChoice(path, name, meta, model_id, match, class_ids)
        if model_id is not None and self.store is not None:
            self.project.set_active_model(int(model_id))  # kept in the project
        self.changed.emit()
        return self.choice

    def _find_or_add_model(self, path: Path, name: str, meta: dict) -> int:
        resolved = path.resolve()
        for record in self.store.models():
            if Path(record.path).resolve() == resolved:
                return int(record.id)
        keep = {k: v for k, v in meta.items() if k in ("config", "metrics", "arch_kwargs",
                                                       "fov_px", "input_mode", "created",
                                                       "n_params", "run")}
        return int(self.store.add_model(name, str(path), str(meta.get("arch", "")),
                                        list(meta.get("classes", [])), keep))

    def set_device(self, device: str) -> None:
        if device != self.device:
            self.device = device
            self.changed.emit()

    # --- predicting -------------------------------------------------------------------------
    def predictor(self) -> SerialisedPredictor:
        """The loaded predictor (loading it on first use: call from a worker thread)."""
        if self.choice is None:
            raise RuntimeError("no model chosen")
        return SerialisedPredictor(*PREDICTORS.get(self.choice.path, self.device))

    def preview_predict_fn(self) -> Callable | None:
        """``predict(patches, sigma, mode, source_crops) -> probs`` for the blur preview, in
        the project's class order where the classes map (model order otherwise)."""
        if self.choice is None:
            return None
        path, device = self.choice.path, self.device

        def predict(patches: np.ndarray, sigma: float, mode: str,
                    source_crops: np.ndarray | None) -> np.ndarray:
            predictor = SerialisedPredictor(*PREDICTORS.get(path, device))
            kwargs: dict[str, Any] = {"blur_sigma": float(sigma), "blur_mode": mode}
            if source_crops is not None:
                kwargs["source_crops"] = source_crops
            return np.asarray(predictor.predict(patches, **kwargs).probs, dtype=np.float32)

        return predict

    def predict_scope(self, image_ids: Sequence[int], cell_ids: Sequence[str] | None = None,
                      batch_size: int = 1024, chunk_seconds: float = 0.5,
                      min_chunk: int = 16, tta: bool = False) -> PredictionJob:
        """Start a background job predicting (and storing) the cells of ``image_ids``.

        The first chunk is ``min_chunk`` cells and later ones are sized from the measured
        rate (``chunk_seconds`` each). A small first chunk keeps Cancel, and closing the
        window, prompt with a slow model: a foundation model on the CPU does a few cells a
        second, so 256 cells would take a minute or more. ``tta``: each cell's probabilities
        are the mean over the 8 orientations of its patch (8x the work; see
        ``trainer.predict.Predictor.predict``)."""
        if self.choice is None or self.choice.model_id is None or self.store is None:
            raise RuntimeError("choose a model for this project first")
        if self.job is not None and self.job.is_running():
            raise RuntimeError("a prediction is already running")
        job = PredictionJob(self.store.path, self.choice.path, self.choice.model_id, image_ids,
                            cell_ids=cell_ids, device=self.device, batch_size=batch_size,
                            chunk_seconds=chunk_seconds, min_chunk=min_chunk,
                            fov_px=self.choice.meta.get("fov_px"),
                            predict_kwargs={"tta": True} if tta else None,
                            user=self.store.user, parent=self)
        job.progress.connect(self._on_progress)
        job.finished.connect(self.jobFinished)
        job.failed.connect(self.jobFailed)
        job.imageChanged.connect(lambda error: self.jobImageChanged.emit(error, job))
        self.job = job
        job.start()
        self.jobStarted.emit()
        return job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _on_progress(self, progress: PredictProgress) -> None:
        self.jobProgress.emit(progress)
        self.chunkPredicted.emit(progress.chunk)

    # --- reading stored predictions ---------------------------------------------------------
    def stored_probs(self, cell_ids: Sequence[str]) -> np.ndarray | None:
        """The chosen model's stored probabilities of ``cell_ids`` (rows of NaN where none)."""
        if self.choice is None or self.choice.model_id is None or self.store is None:
            return None
        arrays = self.store.predictions(self.choice.model_id, list(cell_ids))
        return np.asarray(arrays.probs, dtype=np.float32)


class _LazyCombo(QComboBox):
    """A combo box that asks for its items the first time its list is opened."""

    def __init__(self, on_first_popup: Callable[[], None]) -> None:
        super().__init__()
        self._on_first_popup = on_first_popup

    def showPopup(self) -> None:  # Qt naming
        self._on_first_popup()
        super().showPopup()


class ImageChoiceDialog(QDialog):
    """Tick the images to predict."""

    def __init__(self, images: Sequence[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Predict images")
        self.list = QListWidget()
        for record in images:
            item = QListWidgetItem(f"{Path(record.path).name}  ({record.cell_count} cells)")
            item.setData(Qt.ItemDataRole.UserRole, int(record.id))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(item)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.list)
        lay.addWidget(buttons)

    def chosen(self) -> list[int]:
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(int(item.data(Qt.ItemDataRole.UserRole)))
        return out


class ModelPanel(QWidget):
    """The model panel (see the module docstring). ``window`` is the main window (its
    ``store``, ``current_image_id()``, ``selected_cell_ids()``); it may be None in tests that
    set ``session.store`` themselves."""

    def __init__(self, session: ModelSession, window: Any = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.window_ = window
        # Metadata reads, device listing and model loading: off the UI thread, one at a time.
        self.runner = BackgroundRunner(max_threads=1, parent=self)
        # (label, model file, project model id or None, unregistered training run or None)
        self._entries: list[tuple[str, Path, int | None, Any]] = []
        self._devices_listed = False

        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(18)
        self.open_button = QPushButton("Open model file…")
        self.device_combo = _LazyCombo(self.list_devices)
        self.device_combo.addItem(AUTO_LABEL, AUTO)
        # the device names may be long ("auto (CUDA, then …)", a GPU's name): never the dock's
        self.device_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_combo.setMinimumContentsLength(12)
        self.device_label = QLabel("Device in use: –")
        self.device_label.setWordWrap(True)  # the why-no-GPU note must not widen the dock
        self.info = QLabel("No model chosen.")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop)

        self.scope_combo = QComboBox()
        for key, label in SCOPES:
            self.scope_combo.addItem(label, key)
        self.predict_button = QPushButton("Predict")
        self.tta_box = QCheckBox("Average the 8 orientations (TTA, 8x slower)")
        self.tta_box.setToolTip("Test-time augmentation: each cell's probabilities are the mean "
                                "over its patch rotated and flipped (the dihedral group)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.rate_label = QLabel("")
        self.rate_label.setWordWrap(True)
        # predictions of images whose file was replaced and accepted since (see
        # cellviewer.core.sources.replaced): shown until the images are predicted again
        self.stale_label = QLabel("")
        self.stale_label.setWordWrap(True)
        self.stale_label.setStyleSheet("color: #9a5b00")
        self.stale_label.hide()
        self.image_changed_dialog: ImageChangedDialog | None = None

        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.open_button)
        form.addRow(row)
        form.addRow("Device", self.device_combo)
        form.addRow(self.device_label)
        form.addRow(self.info)
        predict_box = QGroupBox("Predict")
        pl = QVBoxLayout(predict_box)
        prow = QHBoxLayout()
        prow.addWidget(self.scope_combo, 1)
        prow.addWidget(self.predict_button)
        prow.addWidget(self.cancel_button)
        pl.addLayout(prow)
        pl.addWidget(self.tta_box)
        pl.addWidget(self.progress)
        pl.addWidget(self.rate_label)
        pl.addWidget(self.stale_label)
        lay = QVBoxLayout(self)
        lay.addWidget(model_box)
        lay.addWidget(predict_box)
        lay.addStretch(1)

        self.model_combo.activated.connect(self._on_model_activated)
        self.open_button.clicked.connect(self.open_model_file)
        self.device_combo.activated.connect(self._on_device_activated)
        self.predict_button.clicked.connect(self.predict_clicked)
        self.cancel_button.clicked.connect(self.session.cancel)
        session.jobStarted.connect(self._on_job_started)
        session.jobProgress.connect(self._on_job_progress)
        session.jobFinished.connect(self._on_job_finished)
        session.jobFailed.connect(self._on_job_failed)
        session.jobImageChanged.connect(self._on_image_changed)
        session.changed.connect(self._refresh_info)
        session.project.events.project.connect(self._on_project)
        session.project.events.active_model.connect(self._on_active_model)
        self._job_t0 = 0.0
        self.last_message: QMessageBox | None = None
        self.refresh_models()

    # --- the project and its active model ----------------------------------------------------
    def _on_project(self, _store: Any) -> None:
        """Another project: nothing of the last one's predictions stays on the panel."""
        self.session.reset()
        self.progress.setValue(0)
        self.rate_label.setText("")
        self.cancel_button.setEnabled(False)
        self.refresh_models()
        self.refresh_stale()

    def _on_active_model(self, model_id: int | None) -> None:
        """The project's active model (kept in it, e.g. on reopening): load it, unless it is
        the one chosen already."""
        store, choice = self.session.store, self.session.choice
        if model_id is None or store is None or (choice is not None
                                                 and choice.model_id == model_id):
            return
        try:
            record = store.model(model_id)
        except KeyError:
            return
        if not record.path or not Path(record.path).is_file():
            self.info.setText(f"The active model {_esc(record.name)} has no file here "
                              f"({_esc(record.path or 'none')}): choose a model.")
            return
        # its classes were accepted (or mapped by name) when it was chosen
        self.load_model(Path(record.path), model_id=int(model_id), name=record.name,
                        ask=lambda _match: True)

    # --- the store's models -----------------------------------------------------------------
    def refresh_models(self) -> None:
        """List the project's models and its finished runs not registered yet."""
        self._entries = []
        store = self.session.store
        if store is not None:
            known: set[Path] = set()
            for record in store.models():
                if not record.path:
                    continue
                path = Path(record.path)
                known.add(path.resolve())
                self._entries.append((f"{record.name} ({record.arch})", path, int(record.id),
                                      None))
            for run, path in self._finished_runs(store):
                if path.resolve() not in known:
                    self._entries.append((f"{run.name} (training run)", path, None, run))
        self.model_combo.clear()
        self.model_combo.addItem("— choose a model —", -1)
        for i, (label, _path, _mid, _run) in enumerate(self._entries):
            self.model_combo.addItem(label, i)
        choice = self.session.choice
        if choice is not None:
            for i, (_label, path, _mid, _run) in enumerate(self._entries):
                if path.resolve() == choice.path.resolve():
                    self.model_combo.setCurrentIndex(i + 1)
        self._refresh_info()

    @staticmethod
    def _finished_runs(store: Any) -> list[tuple[Any, Path]]:
        """The project's training runs that wrote a model file
        (``cellviewer.core.training.runs``)."""
        from cellviewer.core.training.runs import RunRegistry

        out = []
        for run in RunRegistry(store.path).runs():
            try:
                model = run.model_path()
            except Exception:  # a damaged run hides itself, not the list
                continue
            if model is not None:
                out.append((run, model))
        return out

    def _on_model_activated(self, index: int) -> None:
        entry = self.model_combo.itemData(index)
        if entry is None or entry < 0:
            return
        label, path, model_id, run = self._entries[entry]
        if run is not None:
            # A run of this project: register it the way the training panel does (once).
            from cellviewer.core.training.runs import register_model

            try:
                model_id = register_model(self.session.store, run)
            except Exception as exc:  # shown to the user
                self.warn("Cannot use the run's model", f"{run.folder}: {exc}")
                return
        self.load_model(path, model_id=model_id)

    def open_model_file(self) -> None:
        store = self.session.store
        start = folders.start_folder("model", store.path if store is not None else None)
        path, _ = QFileDialog.getOpenFileName(self, "Open a model file", str(start),
                                              MODEL_FILE_FILTER)
        folders.remember("model", path)
        if path:
            self.load_model(Path(path))

    def load_model(self, path: str | Path, *, model_id: int | None = None,
                   name: str | None = None,
                   ask: Callable[[ClassMatch], bool] | None = None) -> None:
        """Read the model's metadata in the background, then check its classes and choose it.
        ``ask(match)`` decides whether to map classes by name (a dialog by default)."""
        path = Path(path)
        self.info.setText(f"Reading {path.name}…")
        self.list_devices()

        def read() -> dict:
            return read_model_info(path)

        def done(meta: dict) -> None:
            self._adopt(path, meta, model_id, name, ask or self._ask_mapping)

        self._run(read, done)

    def _adopt(self, path: Path, meta: dict, model_id: int | None, name: str | None,
               ask: Callable[[ClassMatch], bool]) -> None:
        refusal = not_a_classifier(path, meta)
        if refusal:  # a cell detector: refused by name, not by its one class "cell"
            self.info.setText(f"{_esc(path.name)} was refused: it is not a cell classifier.")
            self.warn("Model refused", refusal)
            return
        match = self.session.check_classes(meta)
        allow = match.compatible
        if not match.compatible:
            if not match.mappable:
                self.info.setText(f"{_esc(path.name)} was refused: its classes are not the "
                                  "project's.")
                self.warn("Model refused", f"{path.name} cannot be used on this project.\n\n"
                          + match.describe())
                return
            allow = ask(match)
            if not allow:
                self.info.setText(f"{path.name} was not used: its classes are not the "
                                  "project's.")
                return
        try:
            self.session.choose(path, meta, name=name, model_id=model_id, allow_mapping=allow)
        except Exception as exc:  # e.g. the store refused the model
            self.warn("Model refused", f"{path}: {exc}")
            return
        self.refresh_models()
        self._load_predictor()

    def warn(self, title: str, text: str) -> QMessageBox:
        """A warning that does not block the event loop (window-modal, opened, not exec'd)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok,
                          self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.last_message = box
        box.open()
        return box

    def _ask_mapping(self, match: ClassMatch) -> bool:
        answer = QMessageBox.question(
            self, "Classes differ", match.describe() + "\n\nMap the classes by name?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # --- devices ----------------------------------------------------------------------------
    def list_devices(self) -> None:
        """Fill the device list in the background. It imports torch, so it waits until the
        user opens the device list or chooses a model (never at start-up)."""
        if self._devices_listed:
            return
        self._devices_listed = True
        self.device_combo.addItem("(looking for GPUs…)", None)

        def devices() -> list[tuple[str, str]]:
            from cellviewer.ui.predict.worker import available_devices

            return available_devices()

        self._run(devices, self._set_devices)

    def _set_devices(self, devices: list[tuple[str, str]]) -> None:
        current = self.session.device
        self.device_combo.clear()
        for key, label in devices:
            self.device_combo.addItem(label, key)
        index = max(0, self.device_combo.findData(current))
        self.device_combo.setCurrentIndex(index)

    def _on_device_activated(self, index: int) -> None:
        device = self.device_combo.itemData(index)
        if device is None:  # the "looking for GPUs" placeholder
            return
        self.session.set_device(str(device))
        self._load_predictor()

    def _load_predictor(self) -> None:
        """Load the chosen model on the chosen device in the background; show the device."""
        if self.session.choice is None:
            return
        self.device_label.setText("Device in use: loading the model…")

        def load() -> tuple[str, str | None, str | None]:
            predictor = self.session.predictor().predictor
            device = getattr(predictor, "device", None)
            from cellviewer.ui.predict.worker import cpu_note, describe_device

            text = describe_device(device if device is not None else self.session.device)
            short, advice = cpu_note() if text.startswith("CPU") else (None, None)
            return text, short, advice

        def done(found: tuple[str, str | None, str | None]) -> None:
            text, short, advice = found
            # on the CPU for want of a GPU: say why, and how to get one (tooltip)
            self.device_label.setText(f"Device in use: {text}"
                                      + (f" · no GPU: {short}" if short else ""))
            self.device_label.setToolTip(advice or "")
            self.session.deviceInUse.emit(text)

        self._run(load, done, lambda msg: self.device_label.setText(
            f"Device in use: none (the model did not load: {msg})"))

    # --- background helper ------------------------------------------------------------------
    def _run(self, fn: Callable[[], Any], done: Callable[[Any], None],
             error: Callable[[str], None] | None = None) -> None:
        self.runner.submit(fn, done, error or (lambda msg: self.info.setText(f"Error: {msg}")))

    def wait_idle(self, ms: int = 60000) -> bool:
        """Block until background reads ended (tests and shutdown only)."""
        return self.runner.wait(ms)

    # --- info -------------------------------------------------------------------------------
    def refresh_stale(self) -> None:
        """Say how many images the chosen model's predictions are stale on (their file was
        replaced and the new content accepted since they were made)."""
        store, choice = self.session.store, self.session.choice
        marks = stale_marks(store) if store is not None else {}
        if choice is not None and choice.model_id is not None:
            marks = {i: m for i, m in marks.items() if choice.model_id in m.model_ids}
        if not marks:
            self.stale_label.hide()
            self.stale_label.setText("")
            return
        names = store.image_names()
        shown = ", ".join(names.get(i, f"image {i}") for i in sorted(marks)[:3])
        more = f" and {len(marks) - 3} more" if len(marks) > 3 else ""
        n = len(marks)
        self.stale_label.setText(
            f"Stale predictions on {n} image{'s' if n != 1 else ''} ({shown}{more}): the file "
            "changed after they were made. Predict again to renew them.")
        self.stale_label.show()

    def _refresh_info(self) -> None:
        self.refresh_stale()
        choice = self.session.choice
        if choice is None:
            self.info.setText("No model chosen." if self.session.store is not None
                              else "Open a project to choose a model.")
            self.predict_button.setEnabled(False)
            return
        rows = describe_meta(choice.meta)
        if choice.match is not None and not choice.match.identical:
            m = choice.match
            n = sum(v is not None for v in m.mapping.values())
            text = f"by name: {n} of the model's {len(m.model_classes)} classes matched"
            if m.missing_in_model:
                text += f"; it cannot predict {len(m.missing_in_model)} project classes"
            rows["Class mapping"] = text
        html = "".join(f"<tr><td><b>{k}</b>&nbsp;</td><td>{_esc(v)}</td></tr>"
                       for k, v in rows.items())
        self.info.setText(f"<b>{_esc(choice.name)}</b><table>{html}</table>")
        self.predict_button.setEnabled(self.session.job is None
                                       or not self.session.job.is_running())

    # --- predicting -------------------------------------------------------------------------
    def scope_image_ids(self, scope: str) -> tuple[list[int], list[str] | None]:
        """The images (and cells) the scope covers: ([], None) when it covers nothing."""
        store, window = self.session.store, self.window_
        current = window.current_image_id() if window is not None else None
        if scope == SCOPE_PROJECT:
            return [int(r.id) for r in store.images()], None
        if scope == SCOPE_IMAGE:
            return ([int(current)], None) if current is not None else ([], None)
        if scope == SCOPE_SELECTION:
            ids = list(window.selected_cell_ids()) if window is not None else []
            if not ids:
                return [], None
            return store.images_of_cells(ids), ids
        dialog = ImageChoiceDialog(store.images(), self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return [], None
        return dialog.chosen(), None

    def predict_clicked(self) -> None:
        self.predict(str(self.scope_combo.currentData()))

    def predict(self, scope: str, image_ids: Sequence[int] | None = None) -> PredictionJob | None:
        """Start predicting the scope (or the given images); returns the job."""
        if self.session.choice is None:
            QMessageBox.information(self, "Predict", "Choose a model first.")
            return None
        cell_ids = None
        if image_ids is None:
            image_ids, cell_ids = self.scope_image_ids(scope)
        if not image_ids:
            QMessageBox.information(self, "Predict", "There are no cells to predict in "
                                    f"'{dict(SCOPES)[scope]}'.")
            return None
        try:
            return self.session.predict_scope(image_ids, cell_ids,
                                              tta=self.tta_box.isChecked())
        except RuntimeError as exc:
            QMessageBox.information(self, "Predict", str(exc))
            return None

    def _on_job_started(self) -> None:
        self._job_t0 = time.perf_counter()
        self.progress.setValue(0)
        self.rate_label.setText("Starting (loading the model)…")
        self.predict_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _on_job_progress(self, p: PredictProgress) -> None:
        self.progress.setValue(int(1000 * p.fraction))
        self.rate_label.setText(f"{p.done:,} of {p.total:,} cells · {p.cells_per_s:,.0f} "
                                f"cells/s · ETA {format_duration(p.eta_s)}")

    def _on_job_finished(self, s: PredictSummary) -> None:
        self.cancel_button.setEnabled(False)
        self.predict_button.setEnabled(True)
        if s.total:
            self.progress.setValue(int(1000 * s.done / s.total))
        verb = "Cancelled after" if s.cancelled else "Predicted"
        self.rate_label.setText(f"{verb} {s.done:,} of {s.total:,} cells in "
                                f"{format_duration(s.elapsed_s)} ({s.cells_per_s:,.0f} cells/s)")
        self.refresh_stale()

    def _on_job_failed(self, message: str) -> None:
        self.cancel_button.setEnabled(False)
        self.predict_button.setEnabled(True)
        self.rate_label.setText(f"Prediction failed: {message}")

    def _on_image_changed(self, error: Any, job: PredictionJob) -> None:
        """A job stopped at a replaced image before predicting anything: ask the user, and
        run the same prediction again once the image was relinked or its content accepted."""
        store = self.session.store
        if store is None or self.image_changed_dialog is not None:
            return
        name = error.path.name if error.path is not None else "an image"
        image_ids, cell_ids = list(job.image_ids), job.cell_ids
        self.rate_label.setText(f"Prediction stopped before it began: {name} changed since "
                                "it was added to the project.")

        def resolved(outcome: str) -> None:
            self.image_changed_dialog = None
            self.refresh_stale()
            if outcome not in (RELINKED, ACCEPTED):
                self.rate_label.setText(f"Prediction cancelled: {name} changed since it was "
                                        "added to the project; nothing was predicted.")
                return
            try:
                self.session.predict_scope(image_ids, cell_ids)
            except RuntimeError as exc:
                self.rate_label.setText(str(exc))

        self.image_changed_dialog = ask_about_changed_image(
            self, store, error, resolved, work="the prediction")


def not_a_classifier(path: str | Path, meta: dict) -> str:
    """Why a model file cannot classify cells (a detector, by the task in its header), or ""."""
    from trainer.formats.errors import BadModelError
    from trainer.formats.model_header import require_task
    from trainer.formats.model_schema import TASK_CLASSIFICATION

    try:
        require_task(path, meta, TASK_CLASSIFICATION)
    except BadModelError as exc:
        return str(exc)
    return ""


def _esc(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
