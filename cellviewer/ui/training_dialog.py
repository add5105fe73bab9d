"""The "New training run" dialog: choose data, sampling and model, then launch the trainer.

What the user picks: the project's images and classes to train on; FlagLimit (the presets
256…16384, a free value, or every labelled cell) with a live sampling table computed from the
project's label counts by :func:`trainer.data.sampling.sampling_report` (NumPy only: no torch
here); the model from the registry with its study defaults (epochs, learning rate, weight decay,
batch size) editable; foundation models only when their weights file is configured, with linear
probing or last-block fine-tuning; the weights the run starts from (random, or a saved model of
the same architecture: a finished run's best model, a registered model, any ``.cvmodel``, read
from its header by :mod:`trainer.model_header` without torch); the device; the seed; a
name.

On Start the dialog creates the run folder, writes the patch set from the project in a worker
thread (``QThreadPool``, with progress; the UI never waits on it), writes the run configuration
and hands the run to the :class:`~cellviewer.ui.training_runs.TrainingManager`, which starts the
trainer as a separate process.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QObject,
    QProcess,
    QProcessEnvironment,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cellviewer.core import runs as runs_mod
from cellviewer.ui.settings import app_settings
from cellviewer.ui.training_monitor import notify
from trainer.formats.errors import ModelFileError
from trainer.formats.model_header import read_model_header
from trainer.formats.weights_files import WEIGHTS_DIR_ENV, find_weights_file

WEIGHTS_ENV = WEIGHTS_DIR_ENV
WEIGHTS_SETTING = "training/weights_dir"
NO_LIMIT = 0  # the FlagLimit spin box's special value: every labelled cell
FOUNDATION_MODES = (("lp", "linear probe (LP)"), ("ft_last", "fine-tune last block (FT_last)"))


# --- what the dialog needs from the project, Qt-free ------------------------------------------
@dataclass
class ProjectCounts:
    """Labelled cells per image and class (``counts[i, c]``: image i, class c) of a project."""

    image_ids: list[int]
    image_names: list[str]
    class_ids: list[int]
    class_names: list[str]
    class_colors: list[str]
    counts: np.ndarray  # (n_images, n_classes) int64

    @classmethod
    def from_store(cls, store) -> ProjectCounts:
        images = store.images()
        classes = store.classes()
        col = {c.id: j for j, c in enumerate(classes)}
        counts = np.zeros((len(images), len(classes)), dtype=np.int64)
        for i, img in enumerate(images):
            ids = np.asarray(store.cell_arrays(img.id).class_id, dtype=np.int64)
            ids = ids[ids >= 0]
            if ids.size:
                vals, n = np.unique(ids, return_counts=True)
                for v, k in zip(vals, n, strict=True):
                    if int(v) in col:
                        counts[i, col[int(v)]] = k
        return cls(
            image_ids=[img.id for img in images],
            image_names=[Path(img.path).name for img in images],
            class_ids=[c.id for c in classes], class_names=[c.name for c in classes],
            class_colors=[c.color for c in classes], counts=counts,
        )

    def labels_for(self, image_rows: list[int], class_cols: list[int]) -> np.ndarray:
        """A label array with the same per-class counts as the chosen cells (for the report;
        only counts matter there). Class k of the result is ``class_cols[k]``."""
        per_class = np.zeros(len(class_cols), np.int64)
        if image_rows and class_cols:
            per_class = self.counts[np.ix_(image_rows, class_cols)].sum(axis=0)
        return np.repeat(np.arange(len(class_cols)), per_class)


@dataclass
class ModelChoice:
    name: str
    kind: str  # "scratch" | "foundation"
    defaults: dict  # mode ("" for scratch) -> {"epochs", "lr", "weight_decay", "batch_size"}
    summary: str = ""
    modes: list[str] = field(default_factory=list)
    params: int | None = None


def catalogue_from_rows(rows: list[dict]) -> list[ModelChoice]:
    """Model choices from the rows of ``python -m trainer models --json``."""
    out = []
    keys = ("epochs", "lr", "weight_decay", "batch_size")
    for r in rows:
        defaults = {"": {k: r["defaults"][k] for k in keys}}
        modes = list((r.get("mode_defaults") or {}).keys())
        for m in modes:
            defaults[m] = {k: r["mode_defaults"][m][k] for k in keys}
        out.append(ModelChoice(str(r["name"]), str(r.get("kind", "scratch")), defaults,
                               str(r.get("summary", "")), modes, r.get("params")))
    return out


# --- the model a run starts from, Qt-free -----------------------------------------------------
SCRATCH_LABEL = "Random weights (train from scratch)"
CHOOSE_FILE = "<choose file>"  # the data of the start combo's "Choose file…" entry
START_TIP = (
    "The weights the run starts from. Random weights train the model from scratch. A saved "
    "model of the same architecture starts from what it has learnt: use it after correcting "
    "or adding labels (predict, correct, retrain), usually with fewer epochs. Its classes are "
    "matched by name: classes new to this run start fresh, classes this run lacks are dropped.")


@dataclass
class StartChoice:
    """A model file a new run can start from (``RunConfig.init_from``)."""

    path: Path  # absolute
    arch: str  # its architecture: only runs of the same model can start from it
    label: str  # what the combo box shows


def _val_acc_text(value) -> str:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return f" (val acc {value:.3f})" if ok else ""


def start_candidates(store, project_path: Path) -> list[StartChoice]:
    """The model files of a project a run can start from, newest first: the best model of every
    finished (or stopped) run, then the project's registered models not listed already, each
    with its architecture from the run's config.json or the store's record. Opens no model
    file: it reads the store, run.json, config.json and events.jsonl only (milliseconds)."""
    out: list[StartChoice] = []
    seen: set[Path] = set()
    for run in reversed(runs_mod.RunRegistry(project_path).runs()):
        best = run.folder / runs_mod.BEST_MODEL
        try:
            if run.status() not in (runs_mod.FINISHED, runs_mod.STOPPED) or not best.is_file():
                continue
            arch = str(run.config().get("model") or "")
            summary = run.summary()
        except (runs_mod.RunError, OSError):
            continue  # a damaged run hides itself, not the list
        if not arch:
            continue
        epoch = summary.best_epoch or {}
        path = best.resolve()
        seen.add(path)
        out.append(StartChoice(path, arch, f"run {run.name} · best model"
                               + _val_acc_text(epoch.get("val_acc"))))
    for record in reversed(store.models()):
        if not record.path or not record.arch:
            continue
        path = Path(record.path)
        if not path.is_absolute():
            path = project_path.parent / path
        if not path.is_file() or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        final = (record.meta or {}).get("final") or {}
        acc = (final.get("metrics") or {}).get("val_acc") if isinstance(final, dict) else None
        out.append(StartChoice(path.resolve(), str(record.arch),
                               f"model: {record.name}" + _val_acc_text(acc)))
    return out


def carried_classes(model_classes: list[str], run_classes: list[str]
                    ) -> tuple[list[str], list[str], list[str]]:
    """What starting from a model of ``model_classes`` does for a run of ``run_classes``, by
    class name as the trainer matches them: (carried over, new to the model, dropped)."""
    known, wanted = set(model_classes), set(run_classes)
    return ([c for c in run_classes if c in known], [c for c in run_classes if c not in known],
            [c for c in model_classes if c not in wanted])


def weights_dir() -> Path | None:
    """Where foundation-model weights live: ``CELLVIEWER_WEIGHTS_DIR`` or the app setting."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    value = app_settings().value(WEIGHTS_SETTING)
    return Path(str(value)) if value else None


def foundation_weights(name: str, folder: Path | None) -> Path | None:
    """The weights file of foundation model ``name`` in ``folder``, if there is one."""
    return find_weights_file(name, folder)


# --- the patch-set worker ---------------------------------------------------------------------
class _WorkerSignals(QObject):
    progress = Signal(int, int)  # done, total
    finished = Signal(object)  # result (patch set folder)
    failed = Signal(str)


class PatchSetWriter(QRunnable):
    """Writes the run's patch set from the project in a pool thread. It opens its own
    connection to the project (SQLite connections belong to the thread that made them)."""

    def __init__(self, project_path: Path, out_folder: Path, image_ids: list[int],
                 class_names: list[str]) -> None:
        super().__init__()
        self.project_path = project_path
        self.out_folder = out_folder
        self.image_ids = image_ids
        self.class_names = class_names
        self.signals = _WorkerSignals()
        self.cancelled = False

    def run(self) -> None:
        try:
            from cellviewer.core.project_patchset import write_project_patchset
            from cellviewer.core.store import ProjectStore

            def progress(done: int, total: int) -> bool | None:
                self.signals.progress.emit(int(done), int(total))
                if self.cancelled:
                    raise InterruptedError("cancelled")
                return None

            store = ProjectStore.open(self.project_path)
            try:
                write_project_patchset(
                    store, self.out_folder, image_ids=self.image_ids,
                    class_names=self.class_names, progress=progress,
                )
            finally:
                store.close()
        except InterruptedError:
            self.signals.failed.emit("cancelled")
            return
        except Exception as exc:  # any failure is reported in the dialog, never a crash
            self.signals.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.signals.finished.emit(self.out_folder)


class ProjectReader(QRunnable):
    """Runs ``read(store)`` in a pool thread on a read-only connection of its own to the
    project (a large project takes a moment; SQLite connections belong to the thread that
    made them): ``signals.finished(result)``, or ``signals.failed(message)`` for the dialog to
    show (training from scratch still works when the model list fails)."""

    def __init__(self, project_path: Path, read: Callable[[Any], Any]) -> None:
        super().__init__()
        self.project_path = project_path
        self.read = read
        self.signals = _WorkerSignals()

    def run(self) -> None:
        try:
            from cellviewer.core.store import ProjectStore

            store = ProjectStore.open(self.project_path, readonly=True)
            try:
                result = self.read(store)
            finally:
                store.close()
        except Exception as exc:  # reported in the dialog
            self.signals.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.signals.finished.emit(result)


# --- the dialog -------------------------------------------------------------------------------
def _red(text: str) -> str:
    return f"<span style='color:#b00020'>{html.escape(text)}</span>"


def _check_list(names: list[str]) -> QListWidget:
    w = QListWidget()
    w.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    for name in names:
        _check_item(w, name)
    return w


def _check_item(w: QListWidget, text: str) -> QListWidgetItem:
    item = QListWidgetItem(text, w)
    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
    item.setCheckState(Qt.CheckState.Checked)
    return item


def _checked_rows(w: QListWidget) -> list[int]:
    return [i for i in range(w.count()) if w.item(i).checkState() == Qt.CheckState.Checked]


# What the trainer offers (its models with their study defaults, and the devices torch sees),
# asked of a separate Python: importing torch is slow and the GUI process stays free of it.
TRAINER_PROBE = (
    "import json\n"
    "from trainer.engine.device import gpu_status\n"
    "from trainer.models.summary import model_rows\n"
    "gpu = gpu_status()\n"
    "print(json.dumps({'models': model_rows(), 'cuda': gpu['cuda_devices'], "
    "'mps': gpu['mps'], 'gpu_advice': gpu['advice'], 'gpu_short': gpu['short']}))\n"
)


class TrainerProbe(QObject):
    """Runs the probe once per app session (the answer is cached): ``done(dict)`` with
    ``models`` (rows of ``trainer models --json``), ``cuda`` (GPU names) and ``mps``, or
    ``failed(str)`` with the reason."""

    done = Signal(dict)
    failed = Signal(str)
    _cache: dict | None = None

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.proc: QProcess | None = None

    def start(self) -> None:
        if TrainerProbe._cache is not None:
            QTimer.singleShot(0, lambda: self.done.emit(TrainerProbe._cache))
            return
        self.proc = proc = QProcess(self)
        env = QProcessEnvironment()
        for key, value in runs_mod.trainer_env().items():
            env.insert(key, value)
        proc.setProcessEnvironment(env)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        if getattr(sys, "frozen", False):  # no -c in a frozen app: its models command
            proc.start(sys.executable, ["--run-trainer", "models", "--json"])
        else:
            proc.start(sys.executable, ["-c", TRAINER_PROBE])

    def cancel(self) -> None:
        if self.proc is not None and self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(2000)
        self.proc = None

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.proc is not None:
            self.failed.emit(f"could not start {sys.executable} ({self.proc.errorString()})")
            self.proc = None

    def _finished(self, code: int, _status) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", errors="replace")
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", errors="replace")
        try:
            data = json.loads(out)
        except ValueError:
            tail = "\n".join(err.strip().splitlines()[-4:])
            self.failed.emit(f"the trainer exited with code {code}: {tail or 'no output'}")
            return
        if isinstance(data, list):  # `models --json`
            data = {"models": data, "cuda": None, "mps": None}
        TrainerProbe._cache = data
        self.done.emit(data)


class TrainingDialog(QDialog):
    """New training run. ``run_launched(Run)`` is emitted once the trainer has started."""

    run_launched = Signal(object)

    def __init__(self, store, manager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New training run")
        self.store = store
        self.manager = manager
        self.project_path = Path(store.path)
        self.data = ProjectCounts([], [], [], [], [], np.zeros((0, 0), np.int64))
        self.counts_error: str | None = None
        self.models: list[ModelChoice] = []
        self.probe_error: str | None = None
        self.report = None
        self.writer: PatchSetWriter | None = None
        self.run: runs_mod.Run | None = None
        self.probe = TrainerProbe(self)
        self.probe.done.connect(self._on_probe_done)
        self.probe.failed.connect(self._on_probe_failed)

        # --- data (filled when the label counts arrive from a worker thread) ---
        self.image_list = _check_list([])
        self.class_list = _check_list([])
        self.image_list.itemChanged.connect(self._schedule_report)
        self.class_list.itemChanged.connect(self._schedule_report)

        self.limit_combo = QComboBox()
        from trainer.formats.sampling import FLAG_LIMITS

        for lim in FLAG_LIMITS:
            self.limit_combo.addItem(f"{lim:,}", lim)
        self.limit_combo.addItem("other…", -1)
        self.limit_combo.addItem("no limit (every labelled cell)", NO_LIMIT)
        self.limit_spin = QSpinBox()
        self.limit_spin.setRange(1, 10_000_000)
        self.limit_spin.setSingleStep(256)
        self.limit_spin.setValue(4096)
        self.limit_combo.setCurrentIndex(FLAG_LIMITS.index(4096))
        self.limit_combo.currentIndexChanged.connect(self._limit_preset)
        self.limit_spin.valueChanged.connect(self._limit_value)
        self.flagmin_label = QLabel("")

        self.sampling_table = QTableWidget(0, 6)
        self.sampling_table.setHorizontalHeaderLabels(
            ["Class", "Available", "Used", "Train", "Validation", ""])
        self.sampling_table.verticalHeader().hide()
        self.sampling_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.sampling_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        hdr = self.sampling_table.horizontalHeader()
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, 6):
            hdr.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.totals_label = QLabel("")
        self.totals_label.setWordWrap(True)

        data_box = QGroupBox("Data")
        lists = QHBoxLayout()
        for title, w in (("Images", self.image_list), ("Classes", self.class_list)):
            col = QVBoxLayout()
            row = QHBoxLayout()
            row.addWidget(QLabel(f"<b>{title}</b>"), 1)
            for text, state in (("all", Qt.CheckState.Checked), ("none", Qt.CheckState.Unchecked)):
                b = QPushButton(text)
                b.setFlat(True)
                b.clicked.connect(lambda _=False, w=w, s=state: self._check_all(w, s))
                row.addWidget(b)
            col.addLayout(row)
            col.addWidget(w)
            lists.addLayout(col)
        limit_row = QHBoxLayout()
        limit_row.addWidget(QLabel("FlagLimit"))
        limit_row.addWidget(self.limit_combo)
        limit_row.addWidget(self.limit_spin)
        limit_row.addWidget(self.flagmin_label, 1)
        data_lay = QVBoxLayout(data_box)
        data_lay.addLayout(lists, 2)
        data_lay.addLayout(limit_row)
        data_lay.addWidget(self.sampling_table, 3)
        data_lay.addWidget(self.totals_label)

        # --- model ---
        self.model_combo = QComboBox()
        # the model file the run starts from (RunConfig.init_from), offered per architecture
        self.start_combo = QComboBox()
        self.start_combo.setToolTip(START_TIP)
        self.start_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.start_combo.setMinimumContentsLength(24)
        self.start_info = QLabel("")
        self.start_info.setWordWrap(True)
        self.start_info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.start_info.setStyleSheet("color: #555;")
        self._start_candidates: list[StartChoice] | None = None  # None: still being listed
        self._picked: dict[Path, StartChoice] = {}  # files chosen with "Choose file…"
        self._preset: tuple[str, Path] | None = None  # start_from() before the lists came
        self._start_index = 0  # the choice to go back to when "Choose file…" is cancelled
        self._start_meta: dict | None = None  # the chosen file's header
        self._start_error: str | None = None  # why the chosen file cannot be read
        self._start_note = ""  # (HTML) why the last choice was dropped or a file refused
        self._start_list_error = ""  # (HTML) why the project's models could not be listed
        self._start_arch: str | None = None  # the architecture the list was made for
        self._run_classes: list[str] = []  # the classes the run will train (kept ones)
        self.mode_combo = QComboBox()
        for key, text in FOUNDATION_MODES:
            self.mode_combo.addItem(text, key)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10_000)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 10.0)
        self.lr_spin.setSingleStep(1e-4)
        self.wd_spin = QDoubleSpinBox()
        self.wd_spin.setDecimals(5)
        self.wd_spin.setRange(0.0, 10.0)
        self.wd_spin.setSingleStep(1e-3)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 65_536)
        self.defaults_button = QPushButton("Study defaults")
        self.defaults_button.setToolTip("Reset epochs, learning rate, weight decay and batch "
                                        "size to the study's values for this model")
        self.defaults_button.clicked.connect(self._apply_defaults)
        self.weights_edit = QLineEdit(str(weights_dir() or ""))
        self.weights_edit.setPlaceholderText(f"folder of foundation-model weights ({WEIGHTS_ENV})")
        self.weights_edit.setReadOnly(bool(os.environ.get(WEIGHTS_ENV)))
        weights_browse = QPushButton("Browse…")
        weights_browse.clicked.connect(self._browse_weights)
        weights_browse.setEnabled(not os.environ.get(WEIGHTS_ENV))
        weights_row = QHBoxLayout()
        weights_row.addWidget(self.weights_edit, 1)
        weights_row.addWidget(weights_browse)
        self.device_combo = QComboBox()
        self.device_combo.addItem("auto (CUDA, then Apple MPS, then CPU)", "auto")
        self.device_combo.addItem("CPU", "cpu")
        self.device_note = QLabel("looking for GPUs…")
        self.device_note.setStyleSheet("color: #777;")
        device_row = QHBoxLayout()
        device_row.addWidget(self.device_combo, 1)
        device_row.addWidget(self.device_note)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(42)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("a name for the run")
        self._name_touched = False
        self._suggested_name = ""
        self.name_edit.textEdited.connect(self._name_edited)

        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        self.model_info.setStyleSheet("color: #555;")
        model_box = QGroupBox("Model and training")
        form = QFormLayout(model_box)
        form.addRow("Model", self.model_combo)
        form.addRow("", self.model_info)
        form.addRow("Start from", self.start_combo)
        form.addRow("", self.start_info)
        form.addRow("Adaptation", self.mode_combo)
        form.addRow("Foundation weights", weights_row)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Weight decay", self.wd_spin)
        batch_row = QHBoxLayout()
        batch_row.addWidget(self.batch_spin, 1)
        batch_row.addWidget(self.defaults_button)
        form.addRow("Batch size", batch_row)
        form.addRow("Device", device_row)
        form.addRow("Seed", self.seed_spin)
        form.addRow("Run name", self.name_edit)
        self.model_form = form

        # --- bottom ---
        self.progress = QProgressBar()
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton(
            "Start training", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel)

        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(data_box, 3)
        top.addWidget(model_box, 2)
        lay.addLayout(top, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)

        self._report_timer = QTimer(self)
        self._report_timer.setSingleShot(True)
        self._report_timer.setInterval(60)
        self._report_timer.timeout.connect(self.update_report)
        self._fill_models()
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.start_combo.currentIndexChanged.connect(self._start_changed)
        self.mode_combo.currentIndexChanged.connect(self._apply_defaults)
        self.weights_edit.editingFinished.connect(self._fill_models)
        self._model_changed()
        self.update_report()
        self.resize(1080, 640)
        self.model_combo.setPlaceholderText("asking the trainer for its models…")
        self.device_note.setText("asking the trainer for devices…")
        self.probe.start()
        self.counter = ProjectReader(self.project_path, ProjectCounts.from_store)
        self.counter.signals.finished.connect(self._on_counts)
        self.counter.signals.failed.connect(self._on_counts_failed)
        QThreadPool.globalInstance().start(self.counter)
        self.start_reader = ProjectReader(
            self.project_path, lambda store: start_candidates(store, self.project_path))
        self.start_reader.signals.finished.connect(self._on_start_candidates)
        self.start_reader.signals.failed.connect(self._on_start_candidates_failed)
        QThreadPool.globalInstance().start(self.start_reader)

    # --- data and sampling ---------------------------------------------------------------
    def data_ready(self) -> bool:
        return bool(self.data.image_ids)

    def models_ready(self) -> bool:
        return bool(self.models)

    def starts_ready(self) -> bool:
        """The project's model files to start from have been listed."""
        return self._start_candidates is not None

    def ready(self) -> bool:
        """Label counts, the trainer's models and the models to start from have arrived (the
        dialog can start a run)."""
        return self.data_ready() and self.models_ready() and self.starts_ready()

    def _on_counts(self, data: ProjectCounts) -> None:
        self.data = data
        totals_img = data.counts.sum(axis=1)
        totals_cls = data.counts.sum(axis=0)
        for w in (self.image_list, self.class_list):
            w.blockSignals(True)
            w.clear()
        for name, total in zip(data.image_names, totals_img, strict=True):
            _check_item(self.image_list, f"{name}  ({int(total):,} labelled)")
        for name, total, colour in zip(data.class_names, totals_cls, data.class_colors,
                                       strict=True):
            item = _check_item(self.class_list, f"{name}  ({int(total):,})")
            item.setData(Qt.ItemDataRole.DecorationRole, QColor(colour))
        for w in (self.image_list, self.class_list):
            w.blockSignals(False)
        self.update_report()

    def _on_counts_failed(self, message: str) -> None:
        self.counts_error = f"Could not read the project's labels: {message}"
        self._validate()

    def _check_all(self, w: QListWidget, state: Qt.CheckState) -> None:
        w.blockSignals(True)
        for i in range(w.count()):
            w.item(i).setCheckState(state)
        w.blockSignals(False)
        self.update_report()

    def selected_images(self) -> list[int]:
        return [self.data.image_ids[i] for i in _checked_rows(self.image_list)]

    def selected_classes(self) -> list[str]:
        return [self.data.class_names[i] for i in _checked_rows(self.class_list)]

    def flag_limit(self) -> int | None:
        """The chosen FlagLimit (None: every labelled cell)."""
        if self.limit_combo.currentData() == NO_LIMIT:
            return None
        return int(self.limit_spin.value())

    def set_flag_limit(self, limit: int | None) -> None:
        if limit is None:
            self.limit_combo.setCurrentIndex(self.limit_combo.findData(NO_LIMIT))
            return
        idx = self.limit_combo.findData(int(limit))
        self.limit_spin.setValue(int(limit))
        self.limit_combo.setCurrentIndex(idx if idx >= 0 else self.limit_combo.findData(-1))

    def _limit_preset(self) -> None:
        value = self.limit_combo.currentData()
        self.limit_spin.setEnabled(value != NO_LIMIT)
        if value and value > 0 and self.limit_spin.value() != value:
            self.limit_spin.blockSignals(True)
            self.limit_spin.setValue(int(value))
            self.limit_spin.blockSignals(False)
        self._schedule_report()

    def _limit_value(self, value: int) -> None:
        idx = self.limit_combo.findData(int(value))
        target = idx if idx >= 0 else self.limit_combo.findData(-1)
        if target != self.limit_combo.currentIndex():
            self.limit_combo.blockSignals(True)
            self.limit_combo.setCurrentIndex(target)
            self.limit_combo.blockSignals(False)
        self._schedule_report()

    def _schedule_report(self, *_args) -> None:
        self._report_timer.start()

    def update_report(self) -> None:
        """Recompute the sampling table for the current images, classes and FlagLimit."""
        from trainer.formats.augment_plan import AUGMENT_FACTOR
        from trainer.formats.sampling import flag_min, sampling_report

        rows, cols = _checked_rows(self.image_list), _checked_rows(self.class_list)
        names = [self.data.class_names[c] for c in cols]
        labels = self.data.labels_for(rows, cols)
        limit = self.flag_limit()
        effective = limit if limit is not None else max(int(labels.size), 1)
        report = sampling_report(labels, names, limits=(effective,))
        s = report.limits[0]
        self.report = report
        fmin = flag_min(effective) if limit is not None else 0
        self.flagmin_label.setText(
            f"FlagMin {fmin:,} (classes below it are excluded)" if limit is not None
            else "every labelled cell of each class; classes with no cells are excluded")
        t = self.sampling_table
        t.setRowCount(len(names))
        self._run_classes = []
        for r, name in enumerate(names):
            excluded = bool(s.excluded[r]) if limit is not None else report.available[r] == 0
            if not excluded:
                self._run_classes.append(name)
            values = [name, int(report.available[r]), int(s.used[r]), int(s.train[r]),
                      int(s.val[r]), "excluded (below FlagMin)" if excluded else ""]
            for c, v in enumerate(values):
                item = QTableWidgetItem(f"{v:,}" if isinstance(v, int) else str(v))
                if c in (1, 2, 3, 4):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if excluded:
                    item.setForeground(QColor("#b00020" if c == 5 else "#999"))
                t.setItem(r, c, item)
        kept = len(s.kept_classes)
        self.totals_label.setText(
            f"<b>{kept}</b> of {len(names)} classes kept · <b>{s.n_used:,}</b> of "
            f"{report.n_available:,} labelled cells used · train <b>{s.n_train:,}</b> "
            f"(<b>{s.n_train_augmented:,}</b> after the {AUGMENT_FACTOR:g}× augmentation) · "
            f"validation <b>{s.n_val:,}</b>")
        self._suggest_name()
        self._update_start_info()
        self._validate()

    def sampling_rows(self) -> list[dict]:
        """The table's contents (for tests and logs)."""
        out = []
        t = self.sampling_table
        for r in range(t.rowCount()):
            out.append({
                "class": t.item(r, 0).text(),
                "available": int(t.item(r, 1).text().replace(",", "")),
                "used": int(t.item(r, 2).text().replace(",", "")),
                "train": int(t.item(r, 3).text().replace(",", "")),
                "val": int(t.item(r, 4).text().replace(",", "")),
                "excluded": bool(t.item(r, 5).text()),
            })
        return out

    # --- model ---------------------------------------------------------------------------
    def _fill_models(self) -> None:
        current = self.model_combo.currentData()
        folder_text = self.weights_edit.text().strip()
        folder = Path(folder_text) if folder_text else None
        if folder_text and not os.environ.get(WEIGHTS_ENV):
            app_settings().setValue(WEIGHTS_SETTING, folder_text)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self._weights: dict[str, Path] = {}
        hidden = []
        for m in self.models:
            size = f" · {m.params / 1e6:.2f} M parameters" if m.params else ""
            if m.kind == "foundation":
                w = foundation_weights(m.name, folder)
                if w is None:
                    hidden.append(m.name)
                    continue
                self._weights[m.name] = w
                label = f"{m.name} (foundation{size})"
            else:
                label = f"{m.name}{size}"
            self.model_combo.addItem(label, m.name)
            if m.summary:
                self.model_combo.setItemData(self.model_combo.count() - 1, m.summary,
                                             Qt.ItemDataRole.ToolTipRole)
        self.model_combo.blockSignals(False)
        self.weights_edit.setToolTip(
            "Foundation models without a weights file here are not offered: "
            + (", ".join(hidden) if hidden else "none"))
        idx = self.model_combo.findData(current) if current else self.model_combo.findData("cnn")
        self.model_combo.setCurrentIndex(max(idx, 0))
        self._model_changed()

    def model_choice(self) -> ModelChoice | None:
        name = self.model_combo.currentData()
        return next((m for m in self.models if m.name == name), None)

    def _model_changed(self) -> None:
        m = self.model_choice()
        foundation = m is not None and m.kind == "foundation"
        self.mode_combo.setEnabled(foundation)
        if m is None:
            self.model_info.setText("")
        else:
            d = m.defaults[""]
            info = [m.summary] if m.summary else []
            info.append(f"Study defaults: {d['epochs']} epochs, learning rate {d['lr']:g}, "
                        f"weight decay {d['weight_decay']:g}, batch {d['batch_size']}.")
            if foundation:
                info.append(f"Weights: {self._weights[m.name]}")
            self.model_info.setText(" ".join(info))
        self._apply_defaults()
        self._suggest_name()
        self._fill_start_from()

    def _apply_defaults(self) -> None:
        m = self.model_choice()
        if m is None:
            return
        mode = self.mode_combo.currentData() if m.kind == "foundation" else ""
        d = m.defaults.get(mode) or m.defaults[""]
        self.epochs_spin.setValue(int(d["epochs"]))
        self.lr_spin.setValue(float(d["lr"]))
        self.wd_spin.setValue(float(d["weight_decay"]))
        self.batch_spin.setValue(int(d["batch_size"]))

    def _browse_weights(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of foundation-model weights",
                                                  self.weights_edit.text())
        if folder:
            self.weights_edit.setText(folder)
            self._fill_models()

    def _name_edited(self, _text: str) -> None:
        self._name_touched = True

    def _suggest_name(self) -> None:
        """Name the run after model, FlagLimit and time, until the user names it."""
        text = self.name_edit.text()
        if self._name_touched or (text and text != self._suggested_name):
            return
        model = self.model_combo.currentData() or "run"
        limit = self.flag_limit()
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M")
        self._suggested_name = f"{model}-L{limit if limit else 'all'}-{stamp}"
        self.name_edit.setText(self._suggested_name)

    # --- the model the run starts from ----------------------------------------------------
    def start_from(self, arch: str, path: str | os.PathLike) -> None:
        """Preset the run to fine-tune ``path`` (a model of ``arch``): the model choice and
        "Start from" are set as soon as the dialog knows its models and files (at once when
        it already does). What a results window's "Fine-tune…" asks for."""
        self._preset = (str(arch), Path(path).resolve())
        self._apply_preset()

    def _apply_preset(self) -> None:
        if self._preset is None or not (self.models_ready() and self.starts_ready()):
            return
        arch, path = self._preset
        self._preset = None
        idx = self.model_combo.findData(arch)
        if idx < 0:
            self._refuse_start(f"{path}: a {arch} model, which this trainer does not offer")
            return
        self.model_combo.setCurrentIndex(idx)
        if self.start_combo.findData(str(path)) >= 0:
            self._fill_start_from(select=path)
        else:  # not one of the project's runs or models: as if picked by hand
            self.choose_start_file(path)

    def _on_start_candidates(self, found: list[StartChoice]) -> None:
        self._start_candidates = found
        self._fill_start_from()
        self._apply_preset()

    def _on_start_candidates_failed(self, message: str) -> None:
        self._start_candidates = []
        self._start_list_error = _red(f"Could not list the project's models: {message}")
        self._fill_start_from()
        self._apply_preset()

    def start_choices(self) -> list[StartChoice]:
        """The model files offered now (those of the chosen architecture), in combo order."""
        by_path = {str(c.path): c for c in [*self._picked.values(),
                                            *(self._start_candidates or [])]}
        return [by_path[d] for d in (self.start_combo.itemData(i)
                                     for i in range(self.start_combo.count()))
                if isinstance(d, str) and d in by_path]

    def _fill_start_from(self, select: Path | None = None) -> None:
        """Scratch, then the project's model files of the chosen architecture and the files
        picked before, then "Choose file…". The choice is kept while it fits the model, else
        the run starts from scratch again and the info line says why."""
        combo = self.start_combo
        current = str(select) if select is not None else combo.currentData()
        previous = combo.currentText()
        arch = self.model_combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        if arch != self._start_arch:  # a note about the previous architecture is stale now
            self._start_note = ""
        self._start_arch = arch
        combo.addItem(SCRATCH_LABEL, None)
        for c in [*(self._start_candidates or []), *self._picked.values()]:
            if c.arch == arch and combo.findData(str(c.path)) < 0:
                combo.addItem(c.label, str(c.path))
                combo.setItemData(combo.count() - 1, str(c.path), Qt.ItemDataRole.ToolTipRole)
        combo.insertSeparator(combo.count())
        combo.addItem("Choose file…", CHOOSE_FILE)
        combo.setItemData(combo.count() - 1, "Start from any model file (.cvmodel) of this "
                          "architecture", Qt.ItemDataRole.ToolTipRole)
        idx = combo.findData(current) if isinstance(current, str) else 0
        if idx < 0:
            self._start_note = html.escape(f"“{previous}” is not a {arch} model: the run "
                                           "starts from random weights.")
        combo.setCurrentIndex(max(idx, 0))
        self._start_index = combo.currentIndex()
        combo.blockSignals(False)
        self._apply_start()

    def _start_changed(self, _index: int = 0) -> None:
        if self.start_combo.currentData() == CHOOSE_FILE:
            # an action, not a choice: show the previous choice while the file dialog is open
            self.start_combo.blockSignals(True)
            self.start_combo.setCurrentIndex(self._start_index)
            self.start_combo.blockSignals(False)
            QTimer.singleShot(0, self._browse_start_file)
            return
        self._start_index = self.start_combo.currentIndex()
        self._start_note = ""
        self._apply_start()

    def _apply_start(self) -> None:
        self._read_start_header()
        self._update_start_info()
        self._validate()

    def init_from_path(self) -> Path | None:
        """The model file the run starts from (absolute), None for random weights."""
        data = self.start_combo.currentData()
        return Path(data) if isinstance(data, str) and data != CHOOSE_FILE else None

    def _read_start_header(self) -> None:
        """The chosen file's architecture and classes, from its header (stdlib, a few KB: no
        torch in the GUI thread)."""
        self._start_meta = self._start_error = None
        path = self.init_from_path()
        if path is None:
            return
        try:
            self._start_meta = read_model_header(path)
        except ModelFileError as exc:
            self._start_error = str(exc)

    def _update_start_info(self) -> None:
        path = self.init_from_path()
        arch = self.model_combo.currentData()
        label = self.start_info
        label.setToolTip(str(path) if path else "")
        note = "<br>".join(n for n in (self._start_list_error, self._start_note) if n)
        if path is None:
            n = len(self.start_choices())
            if note:
                label.setText(note)
            elif self._start_candidates is None:
                label.setText("Looking for the project's saved models…")
            elif n:
                label.setText(html.escape(
                    f"{n} saved {arch} model{'s' if n > 1 else ''} of this project can start "
                    "the run instead (to retrain after correcting labels)."))
            else:
                label.setText("")
            return
        note = note + "<br>" if note else ""
        problem = self._start_problem()
        if problem:
            label.setText(note + _red(problem))
            return
        meta = self._start_meta or {}
        classes = [str(c) for c in meta.get("classes", [])]
        head = (f"Starting from this {html.escape(str(meta.get('arch')))} model "
                f"({len(classes)} classes)")
        if not self._run_classes:  # no class kept (yet): the model's own classes
            label.setText(f"{note}{head}: {html.escape(', '.join(classes))}.")
            return
        kept, new, dropped = carried_classes(classes, self._run_classes)
        parts = ["classes carried over: " + (html.escape(", ".join(kept)) if kept else
                                            "none (only the feature layers are)")]
        if new:
            parts.append("new (fresh weights): " + html.escape(", ".join(new)))
        if dropped:
            parts.append("dropped: " + html.escape(", ".join(dropped)))
        label.setText(f"{note}{head}; {'; '.join(parts)}.")

    def _start_problem(self) -> str:
        """Why the run cannot start from the chosen file ("" when it can)."""
        if self.init_from_path() is None:
            return ""
        if self._start_error:
            return f"Cannot start from this model: {self._start_error}"
        arch = (self._start_meta or {}).get("arch")
        model = self.model_combo.currentData()
        if arch != model:
            return (f"{self.init_from_path()}: a {arch} model; a {model} run can only start "
                    f"from a {model} model.")
        return ""

    def _browse_start_file(self) -> None:
        folder = runs_mod.runs_root(self.project_path)
        if not folder.is_dir():
            folder = self.project_path.parent
        path, _ = QFileDialog.getOpenFileName(
            self, "Model file to start from", str(folder),
            "CellViewer models (*.cvmodel);;All files (*)")
        if path:
            self.choose_start_file(Path(path))

    def choose_start_file(self, path: str | os.PathLike) -> bool:
        """Offer and choose the model file ``path`` if it is a model of the chosen
        architecture (read from its header); else say why in the info line and keep the
        current choice. Returns whether it was taken."""
        path = Path(path).resolve()
        model = self.model_combo.currentData()
        try:
            meta = read_model_header(path)
        except ModelFileError as exc:
            self._refuse_start(str(exc))
            return False
        if meta["arch"] != model:
            self._refuse_start(f"{path}: a {meta['arch']} model; a {model} run can only start "
                               f"from a {model} model (choose {meta['arch']} above first).")
            return False
        known = {c.path for c in self._start_candidates or []}
        if path not in known:
            self._picked[path] = StartChoice(
                path, str(meta["arch"]), f"file: {path.name} ({len(meta['classes'])} classes)")
        self._start_note = ""
        self._fill_start_from(select=path)
        return True

    def _refuse_start(self, message: str) -> None:
        self._start_note = _red(message)  # shown until the next choice
        self._update_start_info()

    # --- devices -------------------------------------------------------------------------
    def _on_probe_done(self, found: dict) -> None:
        self.models = catalogue_from_rows(found.get("models") or [])
        self._fill_models()
        cuda, mps = found.get("cuda"), found.get("mps")
        for i, name in enumerate(cuda or []):
            self.device_combo.addItem(f"cuda:{i} · {name}", f"cuda:{i}")
        if mps:
            self.device_combo.addItem("Apple MPS", "mps")
        if cuda is None:  # not asked (frozen app): offer them all, the trainer checks
            self.device_combo.addItem("cuda:0", "cuda:0")
            self.device_combo.addItem("Apple MPS", "mps")
            self.device_note.setText("")
        else:
            found_any = [f"{len(cuda)} CUDA GPU(s)"] if cuda else []
            found_any += ["Apple MPS"] if mps else []
            short, advice = found.get("gpu_short"), found.get("gpu_advice")
            self.device_note.setText(", ".join(found_any) if found_any else
                                     "no GPU found" + (f": {short}" if short else ""))
            # why there is none and what to do about it (GPU set-up is a common stumble)
            self.device_note.setToolTip(advice or "")
        self._validate()
        self._apply_preset()

    def _on_probe_failed(self, message: str) -> None:
        self.probe_error = f"Could not ask the trainer for its models: {message}"
        self.device_note.setText("")
        self._validate()

    def device(self) -> str:
        return str(self.device_combo.currentData() or "auto")

    def set_device(self, device: str) -> None:
        idx = self.device_combo.findData(device)
        if idx < 0:
            self.device_combo.addItem(device, device)
            idx = self.device_combo.count() - 1
        self.device_combo.setCurrentIndex(idx)

    # --- starting ------------------------------------------------------------------------
    def _validate(self) -> bool:
        problem = ""
        s = self.report.limits[0] if self.report else None
        if self.counts_error:
            problem = self.counts_error
        elif not self.data_ready():
            problem = "Counting the project's labelled cells…"
        elif not self.selected_images():
            problem = "Choose at least one image."
        elif not self.selected_classes():
            problem = "Choose at least one class."
        elif s is None or len(s.kept_classes) < 2:
            problem = ("At least two classes must keep cells at this FlagLimit: label more "
                       "cells, choose more images, or lower the FlagLimit.")
        elif self.probe_error:
            problem = self.probe_error
        elif not self.models:
            problem = "Waiting for the trainer's list of models…"
        elif self.model_choice() is None:
            problem = "Choose a model."
        elif self._start_problem():
            problem = self._start_problem()
        busy = self.writer is not None
        self.start_button.setEnabled(not problem and not busy)
        if not busy:
            self.status.setText(f"<span style='color:#b00020'>{html.escape(problem)}</span>"
                                if problem else "")
        return not problem

    def build_config(self, run: runs_mod.Run) -> dict:
        """The trainer's RunConfig for ``run`` from the dialog's fields."""
        from trainer.formats.config import RunConfig

        m = self.model_choice()
        foundation = m is not None and m.kind == "foundation"
        cfg = RunConfig(
            patchset=str(run.patchset_path), out_dir=str(run.folder), model=m.name,
            flag_limit=self.flag_limit(), epochs=int(self.epochs_spin.value()),
            batch_size=int(self.batch_spin.value()), lr=float(self.lr_spin.value()),
            weight_decay=float(self.wd_spin.value()), device=self.device(),
            seed=int(self.seed_spin.value()),
            mode=self.mode_combo.currentData() if foundation else None,
            weights=str(self._weights[m.name]) if foundation else None,
            name=run.name, init_from=str(init) if (init := self.init_from_path()) else None,
        ).validate()
        return cfg

    def start(self) -> None:
        """Create the run, write its patch set in a worker thread, then launch the trainer."""
        if self.writer is not None:
            return
        if self._report_timer.isActive():
            # A change of images, classes or FlagLimit refreshes the sampling report 60 ms
            # later. Do it now: Start must check what is chosen now, not the previous report,
            # and a refresh left pending would rewrite the status line after Start, wiping
            # the message of a patch set that failed within those 60 ms.
            self._report_timer.stop()
            self.update_report()
        self._read_start_header()  # the chosen model file may have changed or gone since
        self._update_start_info()
        if not self._validate():
            return
        registry = runs_mod.RunRegistry(self.project_path)
        name = self.name_edit.text().strip() or "run"
        rows, cols = _checked_rows(self.image_list), _checked_rows(self.class_list)
        self.run = registry.create(
            name, project=str(self.project_path), images=self.selected_images(),
            image_names=[self.data.image_names[i] for i in rows],
            classes=self.selected_classes(),
            label_counts={self.data.class_names[c]: int(self.data.counts[rows][:, c].sum())
                          for c in cols},
        )
        self.writer = PatchSetWriter(self.project_path, self.run.patchset_path,
                                     self.selected_images(), self.selected_classes())
        self.writer.signals.progress.connect(self._on_progress)
        self.writer.signals.finished.connect(self._on_written)
        self.writer.signals.failed.connect(self._on_write_failed)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText("Writing the patch set…")
        self.start_button.setEnabled(False)
        self._set_inputs_enabled(False)
        QThreadPool.globalInstance().start(self.writer)

    def _set_inputs_enabled(self, on: bool) -> None:
        for w in self.findChildren(QGroupBox):
            w.setEnabled(on)

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.status.setText(f"Writing the patch set: {done:,} of {total:,} cells")

    def _on_written(self, _folder) -> None:
        self.writer = None
        run = self.run
        try:
            cfg = self.build_config(run)
            cfg.save(run.config_path)
            self.status.setText("Starting the trainer…")
            self.manager.launch(run)
        except Exception as exc:  # a bad value or a failed start: say so, keep the dialog
            self._failed(f"Could not start the run: {exc}")
            return
        self.progress.hide()
        self.run_launched.emit(run)
        self.accept()

    def _on_write_failed(self, message: str) -> None:
        self.writer = None
        if message == "cancelled":
            self._discard_run()
            self.reject()
            return
        self._failed(f"Could not write the patch set: {message}")

    def _failed(self, message: str) -> None:
        self._discard_run()
        self.progress.hide()
        self._set_inputs_enabled(True)
        self._validate()
        self.status.setText(f"<span style='color:#b00020'>{html.escape(message)}</span>")
        notify(self, "New training run", message)

    def _discard_run(self) -> None:
        """Nothing was launched: remove the half-made run folder."""
        if self.run is not None and self.run.status() == runs_mod.CREATED:
            shutil.rmtree(self.run.folder, ignore_errors=True)
        self.run = None

    def _cancel(self) -> None:
        if self.writer is not None:
            self.writer.cancelled = True  # the worker stops at its next progress report
            self.status.setText("Cancelling…")
            return
        self.reject()

    def done(self, result: int) -> None:  # noqa: D102 (Qt override)
        self.probe.cancel()
        if self.writer is not None:  # closed while writing: cancel, clean up when it stops
            self.writer.cancelled = True
            return
        super().done(result)
