"""The "New training run" dialog: a view over a ``TrainingForm`` (cellviewer.core.training).

What the user picks, and the rules between the choices, live in the form (Qt-free): the images
and classes, the FlagLimit and validation share with the sampling table, the model from the
trainer's catalogue with its study defaults, foundation models only where their weights file
is, the model file the run starts from, the device, the seed, the name. The dialog writes each
change into the form and renders the form back; it never reads a number out of its widgets'
text.

What comes from elsewhere is read in the background (:class:`~cellviewer.ui.common.workers.
BackgroundRunner`, the UI never waits): the project's label counts, the project's model files
to start from, and the devices the trainer's PyTorch sees (the one question that needs a
separate trainer process, ``trainer devices --json``). On Start the dialog makes the run of the
form's :class:`~cellviewer.core.training.request.TrainingRequest`, writes its patch set in the
background (with progress), saves its configuration and hands it to the
:class:`~cellviewer.ui.train.runs.TrainingManager`, which starts the trainer.
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
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

from cellviewer.core.formatting import format_duration
from cellviewer.core.sources.identity import ImageChangedError
from cellviewer.core.training import runs as runs_mod
from cellviewer.core.training.devices import probe_devices
from cellviewer.core.training.form import InfoLine, TrainingForm
from cellviewer.core.training.models import FOUNDATION_MODES
from cellviewer.core.training.project_data import ProjectCounts, read_project
from cellviewer.core.training.proposal import load_last, save_last, time_model
from cellviewer.core.training.request import PatchSetJob, TrainingRequest
from cellviewer.core.training.split import read_splits
from cellviewer.core.training.start_from import start_candidates
from cellviewer.ui.common import folders
from cellviewer.ui.common.image_changed import (
    ACCEPTED,
    RELINKED,
    ImageChangedDialog,
    ask_about_changed_image,
)
from cellviewer.ui.common.settings import app_settings
from cellviewer.ui.common.workers import BackgroundRunner
from cellviewer.ui.train.monitor import notify
from trainer.formats.sampling import SamplingReport
from trainer.formats.weights_files import WEIGHTS_DIR_ENV

WEIGHTS_ENV = WEIGHTS_DIR_ENV
WEIGHTS_SETTING = "training/weights_dir"
NO_LIMIT = 0  # the FlagLimit combo's entry for every labelled cell
OTHER_LIMIT = -1  # ... and for a value typed in the spin box
SCRATCH_LABEL = "Random weights (train from scratch)"
CHOOSE_FILE = "<choose file>"  # the data of the start combo's "Choose file…" entry
START_TIP = (
    "The weights the run starts from. Random weights train the model from scratch. A saved "
    "model of the same architecture starts from what it has learnt: use it after correcting "
    "or adding labels (predict, correct, retrain), usually with fewer epochs. Its classes are "
    "matched by name: classes new to this run start fresh, classes this run lacks are dropped.")
RED = "#b00020"
TIMING_DELAY_MS = 1500  # the model is timed once its choice has settled this long
#: how the dialog times a model (tests give a quick stand-in for the trainer process)
TIME_MODEL = time_model


def weights_dir() -> Path | None:
    """Where foundation-model weights live: ``CELLVIEWER_WEIGHTS_DIR`` or the app setting."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    value = app_settings().value(WEIGHTS_SETTING)
    return Path(str(value)) if value else None


_runner: BackgroundRunner | None = None


def _background() -> BackgroundRunner:
    """The training dialogs' worker threads, shared and kept for the app's life: a dialog
    closed while the device probe still runs must not wait for it on its way out."""
    global _runner
    if _runner is None:
        _runner = BackgroundRunner(max_threads=3)
    return _runner


def _red(text: str) -> str:
    return f"<span style='color:{RED}'>{html.escape(text)}</span>"


def _lines_html(lines: list[InfoLine]) -> str:
    return "<br>".join(_red(line.text) if line.error else html.escape(line.text)
                       for line in lines)


@contextlib.contextmanager
def _quiet(*widgets: QWidget) -> Iterator[None]:
    """Render into widgets without their change signals writing back into the form."""
    for w in widgets:
        w.blockSignals(True)
    try:
        yield
    finally:
        for w in widgets:
            w.blockSignals(False)


def _check_list() -> QListWidget:
    w = QListWidget()
    w.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    return w


def _check_item(w: QListWidget, text: str, checked: bool) -> QListWidgetItem:
    item = QListWidgetItem(text, w)
    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
    item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
    return item


def _spin(low: int, high: int, step: int = 1) -> QSpinBox:
    s = QSpinBox()
    s.setRange(low, high)
    s.setSingleStep(step)
    return s


def _double_spin(low: float, high: float, decimals: int, step: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setDecimals(decimals)
    s.setRange(low, high)
    s.setSingleStep(step)
    return s


def _grey_label(colour: str = "#555") -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {colour};")
    return label


class TrainingDialog(QDialog):
    """New training run. ``run_launched(Run)`` is emitted once the trainer has started."""

    run_launched = Signal(object)

    def __init__(self, store, manager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New training run")
        self.store = store
        self.manager = manager
        self.project_path = Path(store.path)
        self.form = TrainingForm(self.project_path, weights_dir())
        self.report: SamplingReport | None = None  # the sampling report the table shows
        self._shown_rows: list[dict] = []
        self.writer: PatchSetJob | None = None  # the patch set being written
        self.run: runs_mod.Run | None = None
        self._request: TrainingRequest | None = None
        self._closed = False
        # a replaced image stopped the patch set: the error, and the question asked about it
        self._image_changed: ImageChangedError | None = None
        self.image_changed_dialog: ImageChangedDialog | None = None

        top = QHBoxLayout()
        top.addWidget(self._build_data_box(), 3)
        top.addWidget(self._build_model_box(), 2)
        lay = QVBoxLayout(self)
        lay.addLayout(top, 1)
        self._build_bottom(lay)
        self._build_timers()
        self.resize(1080, 640)
        self._render_limit()
        self._render_model_list()
        self._render_devices()
        self.update_report()
        self._read_in_background()

    # --- building ------------------------------------------------------------------------
    def _build_data_box(self) -> QGroupBox:
        self.image_list, self.class_list = _check_list(), _check_list()
        f = self.form
        self.image_list.itemChanged.connect(lambda i: self._item_checked(f.choose_image, i))
        self.class_list.itemChanged.connect(lambda i: self._item_checked(f.choose_class, i))
        lists = QHBoxLayout()
        lists.addLayout(self._check_column("Images", self.image_list, f.choose_all_images))
        lists.addLayout(self._check_column("Classes", self.class_list, f.choose_all_classes))
        box = QGroupBox("Data")
        lay = QVBoxLayout(box)
        lay.addLayout(lists, 2)
        lay.addLayout(self._build_limit_row())
        lay.addWidget(self._build_sampling_table(), 3)
        self.totals_label = QLabel("")
        self.totals_label.setWordWrap(True)
        lay.addWidget(self.totals_label)
        return box

    def _check_column(self, title: str, w: QListWidget,
                      choose_all: Callable[[bool], None]) -> QVBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel(f"<b>{title}</b>"), 1)
        for text, on in (("all", True), ("none", False)):
            b = QPushButton(text)
            b.setFlat(True)
            b.clicked.connect(lambda _=False, on=on: self._check_all(choose_all, on))
            row.addWidget(b)
        col = QVBoxLayout()
        col.addLayout(row)
        col.addWidget(w)
        return col

    def _build_limit_row(self) -> QVBoxLayout:
        self.limit_combo = QComboBox()
        for lim in self.form.flag_limit_presets():
            self.limit_combo.addItem(f"{lim:,}", lim)
        self.limit_combo.addItem("other…", OTHER_LIMIT)
        self.limit_combo.addItem("no limit (every labelled cell)", NO_LIMIT)
        self.limit_spin = _spin(1, 10_000_000, 256)
        self.val_spin = _spin(5, 50)
        self.val_spin.setSuffix(" %")
        self.val_spin.setToolTip("The share of each class's kept cells held out to validate "
                                 "on (stratified); the study uses 20 %")
        self.val_spin.setValue(round(self.form.val_fraction * 100))
        self.limit_combo.currentIndexChanged.connect(self._limit_chosen)
        self.limit_spin.valueChanged.connect(self.set_flag_limit)
        self.val_spin.valueChanged.connect(self._val_share_typed)
        self.flagmin_label = QLabel("")
        self.flagmin_label.setWordWrap(True)  # (the dialog fits a 1366-pixel-wide screen)
        self.split_combo = QComboBox()
        self.split_combo.setObjectName("split_combo")
        self.split_combo.addItem("a random share of each class", None)
        self.split_combo.setToolTip("Validate on a share of each class (stratified), or on the "
                                    "cells a metadata column (like 'split') marks as validation")
        self.split_combo.currentIndexChanged.connect(self._split_chosen)
        row = QHBoxLayout()
        for w in (QLabel("FlagLimit"), self.limit_combo, self.limit_spin):
            row.addWidget(w)
        row.addWidget(self.flagmin_label, 1)
        second = QHBoxLayout()
        second.addWidget(QLabel("Validation"))
        second.addWidget(self.split_combo, 1)
        second.addWidget(self.val_spin)
        both = QVBoxLayout()
        both.addLayout(row)
        both.addLayout(second)
        return both

    def _build_sampling_table(self) -> QTableWidget:
        t = self.sampling_table = QTableWidget(0, 6)
        t.setHorizontalHeaderLabels(["Class", "Available", "Used", "Train", "Validation", ""])
        t.verticalHeader().hide()
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        hdr = t.horizontalHeader()
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, 6):
            hdr.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        return t

    def _build_model_box(self) -> QGroupBox:
        self.model_combo = QComboBox()
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        self.model_info = _grey_label()
        self.mode_combo = QComboBox()
        for key, text in FOUNDATION_MODES:
            self.mode_combo.addItem(text, key)
        self.mode_combo.currentIndexChanged.connect(lambda _i: self._then_numbers(
            self.form.set_mode, self.mode_combo.currentData()))
        box = QGroupBox("Model and training")
        form = self.model_form = QFormLayout(box)
        form.addRow("Model", self.model_combo)
        form.addRow("", self.model_info)
        form.addRow("Start from", self._build_start_from())
        form.addRow("", self.start_info)
        form.addRow("Adaptation", self.mode_combo)
        form.addRow("Foundation weights", self._build_weights_row())
        self._build_numbers(form)
        form.addRow("Device", self._build_device_row())
        form.addRow("Seed", self.seed_spin)
        self.estimate_label = _grey_label()  # the CPU proposal, the run's duration here
        self.estimate_label.setObjectName("estimate_label")
        form.addRow("Estimate", self.estimate_label)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("a name for the run")
        self.name_edit.textChanged.connect(self.form.set_name)
        form.addRow("Run name", self.name_edit)
        return box

    def _build_start_from(self) -> QComboBox:
        """The model file the run starts from (RunConfig.init_from), offered per model."""
        combo = self.start_combo = QComboBox()
        combo.setToolTip(START_TIP)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(24)
        combo.currentIndexChanged.connect(self._start_chosen)
        self.start_info = _grey_label()
        self.start_info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        return combo

    def _build_weights_row(self) -> QHBoxLayout:
        fixed = bool(os.environ.get(WEIGHTS_ENV))  # the environment decides, not the user
        self.weights_edit = QLineEdit(str(self.form.weights_dir or ""))
        self.weights_edit.setPlaceholderText(f"folder of foundation-model weights ({WEIGHTS_ENV})")
        self.weights_edit.setReadOnly(fixed)
        self.weights_edit.editingFinished.connect(
            lambda: self.set_weights_folder(self.weights_edit.text()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_weights)
        browse.setEnabled(not fixed)
        row = QHBoxLayout()
        row.addWidget(self.weights_edit, 1)
        row.addWidget(browse)
        return row

    def _build_numbers(self, form: QFormLayout) -> None:
        """Epochs, learning rate, weight decay, batch size, seed: each writes into the form."""
        self.epochs_spin = _spin(1, 10_000)
        self.lr_spin = _double_spin(1e-6, 10.0, 6, 1e-4)
        self.wd_spin = _double_spin(0.0, 10.0, 5, 1e-3)
        self.batch_spin = _spin(1, 65_536)
        self.seed_spin = _spin(0, 2**31 - 1)
        for spin, attr in ((self.epochs_spin, "epochs"), (self.lr_spin, "lr"),
                           (self.wd_spin, "weight_decay"), (self.batch_spin, "batch_size"),
                           (self.seed_spin, "seed")):
            spin.valueChanged.connect(lambda v, attr=attr: self._number_typed(attr, v))
        self.defaults_button = QPushButton("Study defaults")
        self.defaults_button.setToolTip("Reset epochs, learning rate, weight decay and batch "
                                        "size to the study's values for this model")
        self.defaults_button.clicked.connect(
            lambda: self._then_numbers(self.form.apply_defaults))
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Weight decay", self.wd_spin)
        batch_row = QHBoxLayout()
        batch_row.addWidget(self.batch_spin, 1)
        batch_row.addWidget(self.defaults_button)
        form.addRow("Batch size", batch_row)

    def _build_device_row(self) -> QVBoxLayout:
        self.device_combo = QComboBox()
        self.device_combo.currentIndexChanged.connect(
            lambda _i: self.form.set_device(self.device_combo.currentData()))
        self.device_note = _grey_label("#777")  # wraps: the dialog fits a laptop's screen
        row = QVBoxLayout()
        row.addWidget(self.device_combo)
        row.addWidget(self.device_note)
        return row

    def _build_bottom(self, lay: QVBoxLayout) -> None:
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
        for w in (self.progress, self.status, self.buttons):
            lay.addWidget(w)

    def _split_chosen(self, _index: int = 0) -> None:
        self.form.choose_split(self.split_combo.currentData())
        self.val_spin.setEnabled(self.form.split_column is None)
        self.update_report()

    def _render_splits(self) -> None:
        """The metadata columns that can be the validation split, and the one chosen."""
        combo = self.split_combo
        with _quiet(combo):
            while combo.count() > 1:
                combo.removeItem(1)
            for column in self.form.split_columns():
                found = (self.form.splits or {})[column]
                combo.addItem(f"column '{column}'", column)
                combo.setItemData(combo.count() - 1, found.describe(),
                                  Qt.ItemDataRole.ToolTipRole)
            combo.setCurrentIndex(max(combo.findData(self.form.split_column), 0))
        self.val_spin.setEnabled(self.form.split_column is None)
        self.update_report()

    def _render_proposal(self) -> None:
        """The devices, or the last run's settings, arrived: they may change the model and
        the training values."""
        with _quiet(self.val_spin):
            self.val_spin.setValue(round(self.form.val_fraction * 100))
        if self.form.splits is not None:
            self._render_splits()
        self._render_limit()
        self._render_model_list()
        self._render_devices()
        self._changed()

    def _render_estimate(self) -> None:
        if not hasattr(self, "_timing_timer"):
            return  # still being built
        lines = [line for line in (self.form.proposal_note, self.form.duration_line())
                 if line.text]
        self.estimate_label.setText(_lines_html(lines))
        key = self.form.timing_key()
        if key is not None and self.form.devices_ready() and key not in self._timing and \
                key not in self.form.timings and key not in self.form.timing_errors:
            self._timing_timer.start()

    def _time_model(self) -> None:
        """Time the chosen model's training step on this machine (a trainer process, in the
        background), for the run's duration."""
        key = self.form.timing_key()
        if key is None or key in self._timing or key in self.form.timings or \
                not self.isVisible() or self._closed:
            return  # (a dialog nobody sees is not worth a trainer process)
        self._timing.add(key)
        model, device, batch, n = key

        def done(timing) -> None:
            self._timing.discard(key)
            self.form.set_timing(key, timing)
            self._render_estimate()

        def failed(message: str) -> None:
            self._timing.discard(key)
            self.form.timing_failed(key, message)
            self._render_estimate()

        _background().submit(lambda: TIME_MODEL(model, device, batch, n),
                             self._while_open(done), self._while_open(failed))

    def _build_timers(self) -> None:
        # the model is timed once its choice has settled (a trainer process per timing)
        self._timing: set[tuple] = set()
        self._timing_timer = QTimer(self)
        self._timing_timer.setSingleShot(True)
        self._timing_timer.setInterval(TIMING_DELAY_MS)
        self._timing_timer.timeout.connect(self._time_model)
        # the sampling table follows a burst of clicks once, 60 ms after the last
        self._report_timer = QTimer(self)
        self._report_timer.setSingleShot(True)
        self._report_timer.setInterval(60)
        self._report_timer.timeout.connect(self.update_report)
        self._progress_timer = QTimer(self)  # how far the patch set is
        self._progress_timer.setInterval(100)
        self._progress_timer.timeout.connect(self._show_progress)

    def _read_in_background(self) -> None:
        """The project's label counts and model files, and the trainer's devices: each answer
        (or why there is none) goes into the form, then the widgets it changes are drawn."""
        path, form = self.project_path, self.form
        jobs = ((lambda: read_project(path, ProjectCounts.from_store),
                 form.set_counts, form.counts_failed, self._render_data),
                (lambda: read_project(path, lambda store: start_candidates(store, path)),
                 form.set_start_candidates, form.start_candidates_failed,
                 self._render_model_list),
                (probe_devices, form.set_devices, form.devices_failed, self._render_proposal),
                (lambda: load_last(path), form.apply_saved, lambda _m: None,
                 self._render_proposal),
                (lambda: read_project(path, lambda store: read_splits(
                    store, [i.id for i in store.images()], [c.id for c in store.classes()])),
                 form.set_splits, form.splits_failed, self._render_splits))
        for read, done, failed, render in jobs:
            _background().submit(read, self._while_open(done, render),
                                 self._while_open(failed, render))
        self.device_note.setText("asking the trainer for devices…")

    def _while_open(self, into: Callable, render: Callable[[], None] | None = None) -> Callable:
        """``into(answer)`` then ``render()``; dropped once the dialog is closed (an answer
        from the background may come later)."""
        def call(answer) -> None:
            if not self._closed and shiboken6.isValid(self):
                into(answer)
                if render is not None:
                    render()
        return call

    # --- what has arrived ----------------------------------------------------------------
    @property
    def models(self):
        """The trainer's models (its catalogue)."""
        return self.form.models

    def ready(self) -> bool:
        """Label counts, the models to start from and the devices have arrived."""
        return self.form.ready()

    # --- the user's changes, into the form -----------------------------------------------
    def _item_checked(self, choose: Callable[[int, bool], None], item: QListWidgetItem) -> None:
        choose(item.listWidget().row(item), item.checkState() == Qt.CheckState.Checked)
        self._changed()

    def _check_all(self, choose_all: Callable[[bool], None], on: bool) -> None:
        choose_all(on)
        self._render_lists()
        self.update_report()

    def set_flag_limit(self, limit: int | None) -> None:
        """Choose the FlagLimit (None: every labelled cell)."""
        self.form.set_flag_limit(limit)
        self._render_limit()
        self._changed()

    def _limit_chosen(self) -> None:
        value = self.limit_combo.currentData()
        if value == NO_LIMIT:
            self.form.set_flag_limit(None)
        elif value == OTHER_LIMIT:
            self.form.set_flag_limit(self.limit_spin.value())
        else:
            self.form.set_flag_limit(int(value))
        self._render_limit()
        self._changed()

    def _val_share_typed(self, percent: int) -> None:
        self.form.val_fraction = percent / 100
        self._changed()

    def _changed(self) -> None:
        """A data choice changed: the start button at once, the table a moment later."""
        self._render_name()
        self._render_status()
        self._report_timer.start()

    def _model_chosen(self) -> None:
        self.form.model_picked = True  # the CPU proposal keeps the user's model
        self.form.select_model(self.model_combo.currentData())
        self._render_model()

    def _then_numbers(self, change: Callable, *args) -> None:
        """A change of the form that sets the training values (mode, study defaults)."""
        change(*args)
        self._render_numbers()

    def _number_typed(self, attr: str, value) -> None:
        setattr(self.form, attr, value)
        self.form.numbers_typed = True  # no device proposal overrides what was typed
        self._render_status()

    def set_device(self, device: str) -> None:
        """Train on ``device`` ("auto", "cpu", "cuda:1", "mps")."""
        self.form.set_device(device)
        self._render_devices()

    def set_weights_folder(self, folder: str | os.PathLike) -> None:
        """Look for foundation weights in ``folder`` (kept as the app setting)."""
        text = str(folder).strip()
        if text and not os.environ.get(WEIGHTS_ENV):
            app_settings().setValue(WEIGHTS_SETTING, text)
        self.weights_edit.setText(text)
        self.form.set_weights_dir(Path(text) if text else None)
        self._render_model_list()

    def _browse_weights(self) -> None:
        start = self.weights_edit.text() or str(folders.start_folder("weights",
                                                                     self.project_path))
        folder = QFileDialog.getExistingDirectory(self, "Folder of foundation-model weights",
                                                  start)
        folders.remember("weights", folder)
        if folder:
            self.set_weights_folder(folder)

    def _start_chosen(self, _index: int = 0) -> None:
        data = self.start_combo.currentData()
        if data == CHOOSE_FILE:
            # an action, not a choice: show the current choice while the file dialog is open
            self._render_start()
            QTimer.singleShot(0, self._browse_start_file)
            return
        self.form.select_start(data)
        self._render_start_info()
        self._render_status()

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
        architecture; else say why below the choice. Returns whether it was taken."""
        taken = self.form.choose_start_file(path)
        self._render_start()
        self._render_status()
        return taken

    def start_from(self, arch: str, path: str | os.PathLike) -> None:
        """Preset the run to fine-tune ``path`` (a model of ``arch``), as soon as the dialog
        knows the project's model files. What a results window's "Fine-tune…" asks for."""
        self.form.preset_start(arch, path)
        self._render_model_list()

    def init_from_path(self) -> Path | None:
        """The model file the run starts from (absolute), None for random weights."""
        return self.form.start_path

    # --- the form, into the widgets ------------------------------------------------------
    def _render_data(self) -> None:
        """The project's images and classes have come (or failed to)."""
        self._render_lists()
        self._render_name()
        self.update_report()

    def _render_lists(self) -> None:
        data, form = self.form.data, self.form
        with _quiet(self.image_list, self.class_list):
            self.image_list.clear()
            self.class_list.clear()
            for i, (name, total) in enumerate(zip(data.image_names, data.counts.sum(axis=1),
                                                  strict=True)):
                _check_item(self.image_list, f"{name}  ({int(total):,} labelled)",
                            form.image_chosen(i))
            for c, (name, total, colour) in enumerate(zip(
                    data.class_names, data.counts.sum(axis=0), data.class_colors, strict=True)):
                item = _check_item(self.class_list, f"{name}  ({int(total):,})",
                                   form.class_chosen(c))
                item.setData(Qt.ItemDataRole.DecorationRole, QColor(colour))

    def _render_limit(self) -> None:
        limit = self.form.flag_limit
        with _quiet(self.limit_combo, self.limit_spin):
            if limit is None:
                self.limit_combo.setCurrentIndex(self.limit_combo.findData(NO_LIMIT))
            else:
                idx = self.limit_combo.findData(limit)
                self.limit_combo.setCurrentIndex(
                    idx if idx >= 0 else self.limit_combo.findData(OTHER_LIMIT))
                self.limit_spin.setValue(limit)
        self.limit_spin.setEnabled(limit is not None)

    def update_report(self) -> None:
        """Show the sampling table of the form's current images, classes and FlagLimit."""
        self._report_timer.stop()
        self.report = self.form.report()
        rows = self.form.sampling_rows()
        self._shown_rows = [r.as_dict() for r in rows]
        t = self.sampling_table
        t.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = [row.name, row.available, row.used, row.train, row.val,
                      "excluded (below FlagMin)" if row.excluded else ""]
            for c, v in enumerate(values):
                item = QTableWidgetItem(f"{v:,}" if isinstance(v, int) else str(v))
                if isinstance(v, int):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if row.excluded:
                    item.setForeground(QColor(RED if c == 5 else "#999"))
                t.setItem(r, c, item)
        self._render_totals()
        self._render_start_info()
        self._render_status()

    def _render_totals(self) -> None:
        s = self.form.totals()
        self.flagmin_label.setText(
            f"FlagMin {s.flag_min:,} (classes below it are excluded)" if s.flag_min is not None
            else "every labelled cell of each class; classes with no cells are excluded")
        self.totals_label.setText(
            f"<b>{s.kept}</b> of {s.classes} classes kept · <b>{s.used:,}</b> of "
            f"{s.available:,} labelled cells used · train <b>{s.train:,}</b> "
            f"(<b>{s.train_augmented:,}</b> after the {s.augment_factor:g}× augmentation) · "
            f"validation <b>{s.val:,}</b>")

    def sampling_rows(self) -> list[dict]:
        """The rows the sampling table shows, as numbers (class, available, used, train, val,
        excluded)."""
        return list(self._shown_rows)

    def _render_model_list(self) -> None:
        """The models offered (foundation ones only with their weights file), then the chosen
        model's details."""
        combo = self.model_combo
        with _quiet(combo):
            combo.clear()
            for offered in self.form.offered_models():
                m = offered.info
                size = f" · {m.params / 1e6:.2f} M parameters" if m.params else ""
                combo.addItem(f"{m.name} (foundation{size})" if offered.is_foundation
                              else f"{m.name}{size}", m.name)
                if m.summary:
                    combo.setItemData(combo.count() - 1, m.summary, Qt.ItemDataRole.ToolTipRole)
            combo.setCurrentIndex(max(combo.findData(self.form.model), 0))
        hidden = self.form.hidden_models()
        self.weights_edit.setToolTip("Foundation models without a weights file here are not "
                                     "offered: " + (", ".join(hidden) if hidden else "none"))
        self._render_model()

    def _render_model(self) -> None:
        offered = self.form.offered()
        with _quiet(self.mode_combo):
            self.mode_combo.setEnabled(offered is not None and offered.is_foundation)
            if self.form.run_mode():
                self.mode_combo.setCurrentIndex(self.mode_combo.findData(self.form.run_mode()))
        if offered is None:
            self.model_info.setText("")
        else:
            m, d = offered.info, offered.info.defaults
            info = [m.summary] if m.summary else []
            info.append(f"Study defaults: {d.epochs} epochs, learning rate {d.lr:g}, "
                        f"weight decay {d.weight_decay:g}, batch {d.batch_size}.")
            if offered.weights is not None:
                info.append(f"Weights: {offered.weights}")
            self.model_info.setText(" ".join(info))
        self._render_numbers()
        self._render_name()
        self._render_start()

    def _render_numbers(self) -> None:
        f = self.form
        with _quiet(self.epochs_spin, self.lr_spin, self.wd_spin, self.batch_spin,
                    self.seed_spin):
            self.epochs_spin.setValue(f.epochs)
            self.lr_spin.setValue(f.lr)
            self.wd_spin.setValue(f.weight_decay)
            self.batch_spin.setValue(f.batch_size)
            self.seed_spin.setValue(f.seed)
        self._render_status()

    def _render_name(self) -> None:
        if self.name_edit.text() != self.form.run_name:
            with _quiet(self.name_edit):
                self.name_edit.setText(self.form.run_name)

    def _render_start(self) -> None:
        """Random weights, the model files offered for the chosen model, "Choose file…"."""
        combo = self.start_combo
        with _quiet(combo):
            combo.clear()
            combo.addItem(SCRATCH_LABEL, None)
            for c in self.form.start_options():
                combo.addItem(c.label, str(c.path))
                combo.setItemData(combo.count() - 1, str(c.path), Qt.ItemDataRole.ToolTipRole)
            combo.insertSeparator(combo.count())
            combo.addItem("Choose file…", CHOOSE_FILE)
            combo.setItemData(combo.count() - 1, "Start from any model file (.cvmodel) of this "
                              "architecture", Qt.ItemDataRole.ToolTipRole)
            path = self.form.start_path
            combo.setCurrentIndex(max(combo.findData(str(path)), 0) if path else 0)
        self._render_start_info()
        self._render_status()

    def _render_start_info(self) -> None:
        path = self.form.start_path
        self.start_info.setToolTip(str(path) if path else "")
        self.start_info.setText(_lines_html(self.form.start_info()))

    def _render_devices(self) -> None:
        combo, form = self.device_combo, self.form
        with _quiet(combo):
            combo.clear()
            for option in form.device_options():
                combo.addItem(option.label, option.value)
            combo.setCurrentIndex(max(combo.findData(form.device), 0))
        if form.devices is not None:
            self.device_note.setText(form.devices.note())
            # why there is none and what to do about it (GPU set-up is a common stumble)
            self.device_note.setToolTip(form.devices.advice or "")
        elif form.devices_error:
            self.device_note.setText(form.devices_error)

    def _render_status(self) -> bool:
        """The start button and the status line: why the run cannot start, if it cannot."""
        problem = self.form.problem()
        busy = self.writer is not None
        self._render_estimate()
        self.start_button.setEnabled(not problem and not busy)
        if not busy:
            self.status.setText(_red(problem) if problem else "")
        return not problem

    # --- starting ------------------------------------------------------------------------
    def request(self) -> TrainingRequest:
        """The run the form describes now (``FormError`` when it cannot start)."""
        return TrainingRequest.from_form(self.form)

    def start(self) -> None:
        """Create the run, write its patch set in the background, then launch the trainer."""
        if self.writer is not None:
            return
        if self._report_timer.isActive():
            # Show what is chosen now: a refresh left pending would rewrite the status line
            # after Start, wiping the message of a patch set that failed within its 60 ms.
            self.update_report()
        self.form.refresh_start_header()  # the chosen model file may have changed or gone
        self._render_start_info()
        if not self._render_status():
            return
        self._request = self.request()
        remembered, project = self.form.remembered(), self.project_path
        _background().submit(lambda: save_last(project, remembered))  # for the next run
        self.run = self._request.create_run()
        self.writer = job = self._request.patchset_job(self.run)
        self._write_started = time.monotonic()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText("Writing the patch set…")
        self.start_button.setEnabled(False)
        self._set_inputs_enabled(False)
        self._progress_timer.start()
        self._image_changed = None

        def write() -> Path:
            try:
                return job.run()
            except ImageChangedError as exc:  # asked about in the UI thread: keep the error
                self._image_changed = exc
                raise

        _background().submit(write, self._while_open(self._on_written),
                             self._while_open(self._on_write_failed))

    def _set_inputs_enabled(self, on: bool) -> None:
        for w in self.findChildren(QGroupBox):
            w.setEnabled(on)

    def _show_progress(self) -> None:
        job = self.writer
        if job is None or job.total <= 0:
            return
        self.progress.setRange(0, job.total)
        self.progress.setValue(job.done)
        elapsed = format_duration(time.monotonic() - self._write_started)
        self.status.setText(f"Writing the patch set: image {job.done:,} of {job.total:,} "
                            f"({elapsed})")

    def _on_written(self, _folder) -> None:
        self._write_ended()
        run, request = self.run, self._request
        assert run is not None and request is not None  # set by start()
        try:
            request.run_config(run).save(run.config_path)
            self.status.setText("Starting the trainer…")
            self.manager.launch(run)
        except Exception as exc:  # a bad value or a failed start: say so, keep the dialog
            self._failed(f"Could not start the run: {exc}")
            return
        self.progress.hide()
        self.run_launched.emit(run)
        self.accept()

    def _on_write_failed(self, message: str) -> None:
        cancelled = self.writer is not None and self.writer.cancelled
        self._write_ended()
        if cancelled:
            self._discard_run()
            self.reject()
            return
        changed, self._image_changed = self._image_changed, None
        if changed is not None and self.image_changed_dialog is None:
            self._failed(f"Could not write the patch set: {message}", notify_user=False)
            self._ask_about_changed_image(changed)
            return
        self._failed(f"Could not write the patch set: {message}")

    def _ask_about_changed_image(self, error: ImageChangedError) -> None:
        """A replaced image stopped the patch set before anything was written: ask, and start
        again once the image was relinked or its new content accepted."""

        def resolved(outcome: str) -> None:
            self.image_changed_dialog = None
            if self._closed:
                return
            if outcome in (RELINKED, ACCEPTED):
                self.start()

        self.image_changed_dialog = ask_about_changed_image(
            self, self.store, error, resolved, work="the training run")

    def _write_ended(self) -> None:
        self.writer = None
        self._progress_timer.stop()

    def _failed(self, message: str, *, notify_user: bool = True) -> None:
        self._discard_run()
        self.progress.hide()
        self._set_inputs_enabled(True)
        self._render_status()
        self.status.setText(_red(message))
        if notify_user:
            notify(self, "New training run", message)

    def _discard_run(self) -> None:
        """Nothing was launched: remove the half-made run folder."""
        if self.run is not None and self.run.status() == runs_mod.CREATED:
            shutil.rmtree(self.run.folder, ignore_errors=True)
        self.run = None

    def _cancel(self) -> None:
        if self.writer is not None:
            self.writer.cancel()  # the job stops at its next progress report
            self.status.setText("Cancelling…")
            return
        self.reject()

    def done(self, result: int) -> None:  # Qt override
        if self.writer is not None:  # closed while writing: cancel, clean up when it stops
            self.writer.cancel()
            return
        self._closed = True
        super().done(result)
