"""The settings of a new training run and the rules between them, without Qt.

A :class:`TrainingForm` holds everything the training dialog shows: the chosen images and
classes, the FlagLimit and validation share (with the sampling report they give, as numbers),
the model with the study's defaults (epochs, learning rate, weight decay, batch size), the
foundation adaptation mode and weights folder, the model file the run starts from, the device,
the seed and the run name. :meth:`TrainingForm.problem` says, in words for the user, why a run
cannot start yet ("" when it can). The dialog writes what the user does into the form and
renders it; :class:`~cellviewer.core.training.request.TrainingRequest` turns it into a run.

The facts the form is chosen from arrive later (the dialog reads them in the background):
:meth:`set_counts`, :meth:`set_devices`, :meth:`set_start_candidates`; each has a ``*_failed``
twin that records why it could not be had. The models come from the trainer's catalogue (plain
data) at once.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellviewer.core.formatting import format_duration
from cellviewer.core.training import proposal
from cellviewer.core.training.devices import (
    ALL_GPUS,
    AUTO,
    DeviceOption,
    DeviceStatus,
    device_options,
    launch_plan,
)
from cellviewer.core.training.devices import is_device as _is_device
from cellviewer.core.training.models import (
    DEFAULT_MODEL,
    OfferedModel,
    catalogue,
    is_foundation,
    weights_file,
)
from cellviewer.core.training.project_data import ProjectCounts
from cellviewer.core.training.split import SplitCounts
from cellviewer.core.training.start_from import (
    StartFrom,
    StartHeader,
    carried_classes,
    read_start_header,
)
from trainer.formats.augment_plan import AUGMENT_FACTOR, augmented_count
from trainer.formats.catalog import ModelInfo
from trainer.formats.sampling import FLAG_LIMITS, SamplingReport, flag_min, sampling_report

DEFAULT_FLAG_LIMIT = 4096
DEFAULT_VAL_FRACTION = 0.2  # the study's 80/20 split
DEFAULT_SEED = 42


@dataclass(frozen=True)
class SamplingRow:
    """One class of the sampling table, as numbers."""

    name: str
    available: int  # labelled cells of the chosen images
    used: int  # kept at the FlagLimit (0 when excluded)
    train: int
    val: int
    excluded: bool  # below FlagMin (or no cell at all)

    def as_dict(self) -> dict:
        return {"class": self.name, "available": self.available, "used": self.used,
                "train": self.train, "val": self.val, "excluded": self.excluded}


@dataclass(frozen=True)
class SamplingTotals:
    """The sampling table's bottom line."""

    classes: int  # chosen classes
    kept: int  # of those, kept at the FlagLimit
    available: int
    used: int
    train: int
    train_augmented: int  # after the study's augmentation (``augment_factor`` times)
    val: int
    flag_min: int | None  # None: no limit (every labelled cell)
    augment_factor: float = AUGMENT_FACTOR


@dataclass(frozen=True)
class InfoLine:
    """A line of text about the start-from choice; ``error`` lines say what is wrong."""

    text: str
    error: bool = False


class TrainingForm:
    """The settings of one new training run of the project at ``project_path``."""

    def __init__(self, project_path: str | os.PathLike, weights_dir: Path | None = None) -> None:
        self.project_path = Path(project_path)
        # the facts the choices are made from (None: not arrived yet)
        self.data = ProjectCounts.empty()
        self.counts_error = ""
        self.models: list[ModelInfo] = catalogue()
        self.devices: DeviceStatus | None = None
        self.devices_error = ""
        # the data
        self._images: list[bool] = []  # chosen, per image row of ``data``
        self._classes: list[bool] = []  # chosen, per class column of ``data``
        self.flag_limit: int | None = DEFAULT_FLAG_LIMIT  # None: every labelled cell
        self.val_fraction = DEFAULT_VAL_FRACTION
        # the model and its training values
        self.weights_dir = weights_dir
        self.model: str | None = None
        self.mode: str | None = None  # foundation models: "lp" or "ft_last"
        self.epochs = 1
        self.lr = 1e-3
        self.weight_decay = 0.0
        self.batch_size = 512
        self.device = AUTO
        self.seed = DEFAULT_SEED
        self.run_name = ""
        self._suggested_name = ""
        self._name_chosen = False  # the user named the run: stop suggesting names
        # the model file the run starts from
        self.start_path: Path | None = None  # None: random weights
        self._start_candidates: list[StartFrom] | None = None  # None: still being listed
        self._picked: dict[Path, StartFrom] = {}  # files chosen by hand
        self._start_header = StartHeader()
        self._start_arch: str | None = None  # the architecture the choice was made for
        self.start_note = InfoLine("")  # why the last choice was dropped or a file refused
        self.start_list_error = ""  # why the project's models could not be listed
        self._preset: tuple[str, Path] | None = None  # preset_start() before the lists came
        self._report_key: tuple | None = None
        self._report: SamplingReport | None = None
        # fitting the machine (cellviewer.core.training.proposal)
        self.numbers_typed = False  # the user typed a training value: propose nothing more
        self.model_picked = False  # the user (or Fine-tune) chose the model: keep it
        self.restored = False  # filled from the project's last run
        self.proposal_note = InfoLine("")  # why the values are not the study's
        self.timings: dict[tuple, proposal.Timing] = {}  # by timing_key()
        self.timing_errors: dict[tuple, str] = {}
        # a metadata column as the validation split (cellviewer.core.training.split)
        self.splits: dict[str, SplitCounts] | None = None  # None: not read yet
        self.split_column: str | None = None  # None: the random stratified split
        self._pending_split: str | None = None  # from the last run, before the splits came
        self._refresh_model()  # the default model with the study's values

    # --- the facts arriving ------------------------------------------------------------------
    def set_counts(self, data: ProjectCounts) -> None:
        """The project's label counts: every image and class is chosen."""
        self.data = data
        self._images = [True] * len(data.image_ids)
        self._classes = [True] * len(data.class_names)
        self.counts_error = ""
        self.suggest_name()

    def counts_failed(self, message: str) -> None:
        self.counts_error = f"Could not read the project's labels: {message}"

    def set_devices(self, status: DeviceStatus) -> None:
        self.devices, self.devices_error = status, ""
        self.propose_for_device()

    def devices_failed(self, message: str) -> None:
        self.devices_error = f"could not list the GPUs ({message})"
        self.propose_for_device()

    # --- fitting the machine, the last run's settings ----------------------------------------
    def propose_for_device(self) -> None:
        """No GPU: a small model, few epochs and a CPU-sized batch instead of the study's GPU
        values, unless the user typed values or the project's last run set them."""
        if proposal.has_gpu(self.devices) or self.numbers_typed or self.restored:
            return
        names = [o.name for o in self.offered_models()]
        option = self.model_info()
        picked = self.model_picked or self._preset is not None or self.start_path is not None
        if not picked and proposal.CPU_MODEL in names and (
                option is None or is_foundation(option) or option.params > 5_000_000):
            self.select_model(proposal.CPU_MODEL)
        self.epochs = min(self.epochs, proposal.CPU_EPOCHS)
        self.batch_size = min(self.batch_size, proposal.CPU_BATCH)
        self.proposal_note = InfoLine(
            f"No GPU found: proposed for a CPU ({self.model}, {self.epochs} epochs, batch "
            f"{self.batch_size}); Study defaults gives the study's GPU values.")

    def remembered(self) -> dict:
        """The settings kept for the project's next run."""
        return {k: getattr(self, k) for k in proposal.REMEMBERED}

    def apply_saved(self, values: dict) -> bool:
        """Fill the form from the project's last run (values it cannot use are skipped);
        False when there was nothing to apply."""
        if not values:
            return False
        model = values.get("model")
        if isinstance(model, str) and model in {o.name for o in self.offered_models()}:
            self.select_model(model)
            mode = values.get("mode")
            option = self.model_info()
            if option is not None and option.modes and mode in option.modes:
                self.mode = mode
        for key, kind in (("epochs", int), ("batch_size", int), ("seed", int),
                          ("lr", float), ("weight_decay", float),
                          ("val_fraction", float)):
            value = values.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                setattr(self, key, kind(value))
        if isinstance(values.get("device"), str) and _is_device(values["device"]):
            self.device = values["device"]
        limit = values.get("flag_limit", self.flag_limit)
        if limit is None or (isinstance(limit, int) and limit > 0):
            self.set_flag_limit(limit)
        column = values.get("split_column")
        if isinstance(column, str):
            if self.splits is None:
                self._pending_split = column  # chosen once the columns have been read
            elif column in self.splits:
                self.split_column = column
        self.restored = True
        self.proposal_note = InfoLine("The settings of this project's last run.")
        return True

    def timing_key(self) -> tuple | None:
        """What a timing depends on: model, device, batch size, number of classes."""
        if self.model_info() is None:
            return None
        return (self.model, self.launch_plan()[0], int(self.batch_size),
                max(2, len(self.run_classes())))

    def launch_plan(self) -> tuple[str, int]:
        """The trainer's device and the number of processes (several: one per GPU)."""
        return launch_plan(self.device, self.devices)

    def set_timing(self, key: tuple, timing: proposal.Timing) -> None:
        self.timings[key] = timing
        self.timing_errors.pop(key, None)

    def timing_failed(self, key: tuple, message: str) -> None:
        self.timing_errors[key] = message

    def estimate(self) -> float | None:
        """The run's duration in seconds on this machine, once the model has been timed."""
        key = self.timing_key()
        timing = self.timings.get(key) if key is not None else None
        if timing is None or not self.data_ready():
            return None
        t = self.totals()
        return proposal.estimate_seconds(int(self.epochs), t.train_augmented, t.val, timing)

    def duration_line(self) -> InfoLine:
        """How long the run would take, in words (or why that is not known yet)."""
        key = self.timing_key()
        if key is None:
            return InfoLine("")
        if key in self.timing_errors:
            return InfoLine(f"Could not time the model here: {self.timing_errors[key]}", True)
        seconds = self.estimate()
        if seconds is None:
            return InfoLine("Timing the model on this machine…")
        timing = self.timings[key]
        where = timing.device or self.device
        processes = self.launch_plan()[1]
        if processes > 1:  # timed on one GPU; how well N scale is the GPUs' and links' to say
            where = f"one of the {processes} GPUs (less on all of them)"
        return InfoLine(f"About {format_duration(seconds)} on {where} "
                        f"({timing.train_samples_per_s:,.0f} training patches/s measured here, "
                        f"{self.epochs} epochs)")

    def set_start_candidates(self, found: list[StartFrom]) -> None:
        """The project's model files a run can start from (``start_from.start_candidates``)."""
        self._start_candidates = list(found)
        self._refresh_start()
        self._apply_preset()

    def start_candidates_failed(self, message: str) -> None:
        self._start_candidates = []
        self.start_list_error = f"Could not list the project's models: {message}"
        self._refresh_start()
        self._apply_preset()

    def data_ready(self) -> bool:
        return bool(self.data.image_ids)

    def models_ready(self) -> bool:
        return bool(self.models)

    def starts_ready(self) -> bool:
        """The project's model files to start from have been listed."""
        return self._start_candidates is not None

    def devices_ready(self) -> bool:
        """The trainer has said which devices it has (or why it could not)."""
        return self.devices is not None or bool(self.devices_error)

    def ready(self) -> bool:
        """Every fact the form is filled from has arrived. (A run can start without the
        devices: "auto" and the CPU are always there.)"""
        return (self.data_ready() and self.models_ready() and self.starts_ready()
                and self.devices_ready())

    # --- images, classes, FlagLimit ----------------------------------------------------------
    def image_chosen(self, row: int) -> bool:
        return self._images[row]

    def class_chosen(self, col: int) -> bool:
        return self._classes[col]

    def choose_image(self, row: int, chosen: bool = True) -> None:
        self._images[row] = bool(chosen)

    def choose_class(self, col: int, chosen: bool = True) -> None:
        self._classes[col] = bool(chosen)

    def choose_all_images(self, chosen: bool = True) -> None:
        self._images = [bool(chosen)] * len(self._images)

    def choose_all_classes(self, chosen: bool = True) -> None:
        self._classes = [bool(chosen)] * len(self._classes)

    def image_rows(self) -> list[int]:
        return [i for i, on in enumerate(self._images) if on]

    def class_cols(self) -> list[int]:
        return [c for c, on in enumerate(self._classes) if on]

    def selected_images(self) -> list[int]:
        """The chosen images' ids."""
        return [self.data.image_ids[i] for i in self.image_rows()]

    def selected_classes(self) -> list[str]:
        """The chosen classes' names, in the project's order."""
        return [self.data.class_names[c] for c in self.class_cols()]

    def set_flag_limit(self, limit: int | None) -> None:
        """The FlagLimit (None: every labelled cell)."""
        if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
            raise ValueError(f"a FlagLimit is a positive number of cells, not {limit!r}")
        self.flag_limit = None if limit is None else int(limit)
        self.suggest_name()

    @staticmethod
    def flag_limit_presets() -> tuple[int, ...]:
        """The study's FlagLimits."""
        return FLAG_LIMITS

    def flag_min(self) -> int | None:
        """FlagMin at the chosen FlagLimit (None: no limit, no FlagMin)."""
        return None if self.flag_limit is None else flag_min(self.flag_limit)

    def report(self) -> SamplingReport:
        """The sampling report of the chosen images and classes at the chosen FlagLimit and
        validation share (one limit: the FlagLimit, or every cell's count without one)."""
        rows, cols = self.image_rows(), self.class_cols()
        split = self.split()
        key = (tuple(rows), tuple(cols), self.flag_limit, self.val_fraction, id(self.data),
               self.split_column)
        if key != self._report_key or self._report is None:
            if split is not None:  # the training side only: validation is the split's
                per_class = split.train[np.ix_(rows, cols)].sum(axis=0) if rows and cols \
                    else np.zeros(len(cols), np.int64)
                labels = np.repeat(np.arange(len(cols)), per_class)
            else:
                labels = self.data.labels_for(rows, cols)
            limit = self.flag_limit if self.flag_limit is not None else max(int(labels.size), 1)
            # (with a split column the whole sample trains: the trainer is given the
            # validation patch set and applies no share)
            self._report = sampling_report(labels, [self.data.class_names[c] for c in cols],
                                           limits=(limit,), val_fraction=self.val_fraction)
            self._report_key = key
        return self._report

    def sampling_rows(self) -> list[SamplingRow]:
        """The sampling table: one row per chosen class."""
        report = self.report()
        s = report.limits[0]
        split_val = self._split_val()
        out = []
        for r, name in enumerate(report.classes):
            # without a limit only a class with no cell at all is left out
            excluded = bool(s.excluded[r]) if self.flag_limit is not None \
                else int(report.available[r]) == 0
            if split_val is None:
                train, val = int(s.train[r]), int(s.val[r])
            else:
                train, val = int(s.used[r]), 0 if excluded else int(split_val[r])
            out.append(SamplingRow(name, int(report.available[r]), int(s.used[r]), train, val,
                                   excluded))
        return out

    def _split_val(self):
        """Validation cells per chosen class by the split column (None: no column)."""
        split = self.split()
        if split is None:
            return None
        rows, cols = self.image_rows(), self.class_cols()
        if not rows or not cols:
            return np.zeros(len(cols), np.int64)
        return split.val[np.ix_(rows, cols)].sum(axis=0)

    # --- a metadata column as the validation split -------------------------------------------
    def set_splits(self, found: dict[str, SplitCounts]) -> None:
        """The project's split columns (``split.read_splits``), aligned with ``data``."""
        self.splits = dict(found)
        pending, self._pending_split = self._pending_split, None
        if pending in self.splits:
            self.split_column = pending
        elif self.split_column not in self.splits:
            self.split_column = None

    def splits_failed(self, message: str) -> None:
        self.splits = {}
        self.split_column = None

    def split_columns(self) -> list[str]:
        return sorted(self.splits or {})

    def choose_split(self, column: str | None) -> None:
        """Validate on the cells a metadata column marks (None: a random stratified split)."""
        if column is not None and column not in (self.splits or {}):
            raise ValueError(f"no split column {column!r} among the cells' metadata "
                             f"({', '.join(self.split_columns()) or 'none'})")
        self.split_column = column

    def split(self) -> SplitCounts | None:
        if self.split_column is None or not self.splits:
            return None
        found = self.splits.get(self.split_column)
        if found is None or found.train.shape != self.data.counts.shape:
            return None  # (counts of another read of the project: not to be mixed)
        return found

    def totals(self) -> SamplingTotals:
        report = self.report()
        s = report.limits[0]
        if self.split() is not None:  # the whole sample trains; validation is the split's
            rows = self.sampling_rows()
            train = sum(r.train for r in rows)
            return SamplingTotals(classes=len(report.classes), kept=len(s.kept_classes),
                                  available=report.n_available, used=s.n_used, train=train,
                                  train_augmented=augmented_count(train),
                                  val=sum(r.val for r in rows), flag_min=self.flag_min())
        return SamplingTotals(classes=len(report.classes), kept=len(s.kept_classes),
                              available=report.n_available, used=s.n_used, train=s.n_train,
                              train_augmented=s.n_train_augmented, val=s.n_val,
                              flag_min=self.flag_min())

    def run_classes(self) -> list[str]:
        """The classes the run will train: the chosen ones the FlagLimit keeps."""
        return [r.name for r in self.sampling_rows() if not r.excluded]

    def label_counts(self) -> dict[str, int]:
        """Labelled cells per chosen class in the chosen images."""
        cols = self.class_cols()
        counts = self.data.per_class(self.image_rows(), cols)
        return {self.data.class_names[c]: int(n) for c, n in zip(cols, counts, strict=True)}

    # --- the model ---------------------------------------------------------------------------
    def offered_models(self) -> list[OfferedModel]:
        """The models offered: scratch models, and foundation models whose weights file is in
        the weights folder."""
        out = []
        for m in self.models:
            weights = weights_file(m, self.weights_dir)
            if not is_foundation(m) or weights is not None:
                out.append(OfferedModel(m, weights))
        return out

    def hidden_models(self) -> list[str]:
        """Foundation models not offered for want of their weights file."""
        offered = {o.name for o in self.offered_models()}
        return [m.name for m in self.models if m.name not in offered]

    def offered(self) -> OfferedModel | None:
        """The chosen model, if it is offered."""
        return next((o for o in self.offered_models() if o.name == self.model), None)

    def model_info(self) -> ModelInfo | None:
        """The chosen model's catalogue entry, if it is offered."""
        o = self.offered()
        return o.info if o is not None else None

    def set_weights_dir(self, folder: Path | None) -> None:
        """Where foundation weights are looked for; the model list follows."""
        self.weights_dir = folder
        self._refresh_model()

    def select_model(self, name: str) -> None:
        """Choose a model: the study's defaults fill epochs, learning rate, weight decay and
        batch size; the start-from choice is kept only if it is a model of this one. The
        model chosen already keeps the values typed since."""
        if name == self.model and self.model_info() is not None:
            return
        self.model = name
        option = self.model_info()
        self.mode = option.modes[0] if option is not None and option.modes else None
        self.apply_defaults()
        self.suggest_name()
        self._refresh_start()

    def set_mode(self, mode: str) -> None:
        """A foundation model's adaptation mode, with its defaults."""
        option = self.model_info()
        if option is not None and option.modes and mode not in option.modes:
            raise ValueError(f"{option.name} has no mode {mode!r} (it has "
                             f"{', '.join(option.modes)})")
        self.mode = mode
        self.apply_defaults()

    def run_mode(self) -> str | None:
        """The mode the run uses: a foundation model's, None for scratch models."""
        option = self.model_info()
        return self.mode if option is not None and is_foundation(option) else None

    def apply_defaults(self) -> None:
        """Epochs, learning rate, weight decay and batch size back to the study's values."""
        option = self.model_info()
        if option is None:
            return
        d = option.defaults_for(self.run_mode())
        self.epochs, self.lr, self.weight_decay, self.batch_size = (
            d.epochs, d.lr, d.weight_decay, d.batch_size)

    def _refresh_model(self) -> None:
        names = [o.name for o in self.offered_models()]
        if self.model in names:
            return
        self.model = None
        pick = DEFAULT_MODEL if DEFAULT_MODEL in names else (names[0] if names else None)
        if pick is not None:
            self.select_model(pick)
        else:
            self._refresh_start()

    # --- device and name ---------------------------------------------------------------------
    def device_options(self) -> list[DeviceOption]:
        return device_options(self.devices, self.device)

    def set_device(self, device: str) -> None:
        self.device = str(device or AUTO)

    def set_name(self, name: str) -> None:
        """The run's name as the user typed it (a suggestion is no longer made once the name
        differs from the last one suggested)."""
        self.run_name = name
        self._name_chosen = name != self._suggested_name

    def suggest_name(self, now: _dt.datetime | None = None) -> None:
        """Name the run after model, FlagLimit and time, until the user names it."""
        if self._name_chosen:
            return
        stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M")
        self._suggested_name = (f"{self.model or 'run'}-L{self.flag_limit or 'all'}-{stamp}")
        self.run_name = self._suggested_name

    # --- the model file the run starts from ---------------------------------------------------
    def start_options(self) -> list[StartFrom]:
        """The model files offered for the chosen model: the project's, then those picked."""
        out: list[StartFrom] = []
        seen: set[Path] = set()
        for c in [*(self._start_candidates or []), *self._picked.values()]:
            if c.arch == self.model and c.path not in seen:
                seen.add(c.path)
                out.append(c)
        return out

    def start_choice(self) -> StartFrom | None:
        return next((c for c in self.start_options() if c.path == self.start_path), None)

    def select_start(self, path: str | os.PathLike | None) -> None:
        """Choose one of :meth:`start_options` (None: random weights)."""
        path = Path(path).resolve() if path is not None else None
        if path is not None and all(c.path != path for c in self.start_options()):
            raise ValueError(f"{path} is not offered for a {self.model} run")
        self.start_path = path
        self.start_note = InfoLine("")
        self.refresh_start_header()

    def choose_start_file(self, path: str | os.PathLike) -> bool:
        """Offer and choose the model file ``path`` if it is a model of the chosen
        architecture (read from its header); else say why in :attr:`start_note` and keep the
        current choice. Returns whether it was taken."""
        path = Path(path).resolve()
        header = read_start_header(path)
        if header.error:
            self.start_note = InfoLine(header.error, error=True)
            return False
        if header.arch != self.model:
            self.start_note = InfoLine(
                f"{path}: a {header.arch} model; a {self.model} run can only start from a "
                f"{self.model} model (choose {header.arch} above first).", error=True)
            return False
        if all(c.path != path for c in self._start_candidates or []):
            self._picked[path] = StartFrom(
                path, str(header.arch), f"file: {path.name} ({len(header.classes)} classes)")
        self.select_start(path)
        return True

    def preset_start(self, arch: str, path: str | os.PathLike) -> None:
        """Preset the run to fine-tune ``path`` (a model of ``arch``): the model and the start
        are chosen as soon as the form knows its models and files (at once when it does)."""
        self._preset = (str(arch), Path(path).resolve())
        self._apply_preset()

    def _apply_preset(self) -> None:
        if self._preset is None or not (self.models_ready() and self.starts_ready()):
            return
        arch, path = self._preset
        self._preset = None
        if arch not in {o.name for o in self.offered_models()}:
            self.start_note = InfoLine(
                f"{path}: a {arch} model, which this trainer does not offer", error=True)
            return
        self.select_model(arch)
        if any(c.path == path for c in self.start_options()):
            self.select_start(path)
        else:  # not one of the project's runs or models: as if picked by hand
            self.choose_start_file(path)

    def _refresh_start(self) -> None:
        """After a change of model or of the files listed: the start is kept while it is a
        file of this model, else the run starts from random weights and a note says why."""
        if self.model != self._start_arch:  # a note about another architecture is stale
            self.start_note = InfoLine("")
            self._start_arch = self.model
        if self.start_path is None or self.start_choice() is not None:
            return
        old = next((c.label for c in [*(self._start_candidates or []), *self._picked.values()]
                    if c.path == self.start_path), str(self.start_path))
        self.start_path = None
        self._start_header = StartHeader()
        self.start_note = InfoLine(f"“{old}” is not a {self.model} model: the run starts from "
                                   "random weights.")

    def refresh_start_header(self) -> None:
        """Read the chosen file's header again (it may have changed or gone since)."""
        self._start_header = (read_start_header(self.start_path) if self.start_path is not None
                              else StartHeader())

    def start_problem(self) -> str:
        """Why the run cannot start from the chosen file ("" when it can)."""
        if self.start_path is None:
            return ""
        if self._start_header.error:
            return f"Cannot start from this model: {self._start_header.error}"
        arch = self._start_header.arch
        if arch != self.model:
            return (f"{self.start_path}: a {arch} model; a {self.model} run can only start "
                    f"from a {self.model} model.")
        return ""

    def start_info(self) -> list[InfoLine]:
        """What the start-from choice means for this run: the notes, then which classes a
        saved model carries over (or how many saved models could start the run instead)."""
        notes = [line for line in (InfoLine(self.start_list_error, True), self.start_note)
                 if line.text]
        if self.start_path is None:
            if notes:
                return notes
            if self._start_candidates is None:
                return [InfoLine("Looking for the project's saved models…")]
            n = len(self.start_options())
            if not n:
                return []
            return [InfoLine(f"{n} saved {self.model} model{'s' if n > 1 else ''} of this "
                             "project can start the run instead (to retrain after correcting "
                             "labels).")]
        problem = self.start_problem()
        if problem:
            return [*notes, InfoLine(problem, error=True)]
        classes = list(self._start_header.classes)
        head = f"Starting from this {self._start_header.arch} model ({len(classes)} classes)"
        run_classes = self.run_classes()
        if not run_classes:  # no class kept (yet): the model's own classes
            return [*notes, InfoLine(f"{head}: {', '.join(classes)}.")]
        kept, new, dropped = carried_classes(classes, run_classes)
        parts = ["classes carried over: " + (", ".join(kept) if kept
                                             else "none (only the feature layers are)")]
        if new:
            parts.append("new (fresh weights): " + ", ".join(new))
        if dropped:
            parts.append("dropped: " + ", ".join(dropped))
        return [*notes, InfoLine(f"{head}; {'; '.join(parts)}.")]

    # --- validation --------------------------------------------------------------------------
    def problem(self) -> str:
        """Why the run cannot start now, in words for the user ("" when it can)."""
        return next(iter(self.problems()), "")

    def problems(self) -> list[str]:
        """Every reason the run cannot start now, the most basic first."""
        if self.counts_error:
            return [self.counts_error]
        if not self.data_ready():
            return ["Counting the project's labelled cells…"]
        if not self.selected_images():
            return ["Choose at least one image."]
        if not self.selected_classes():
            return ["Choose at least one class."]
        if len(self.run_classes()) < 2:
            return ["At least two classes must keep cells at this FlagLimit: label more "
                    "cells, choose more images, or lower the FlagLimit."]
        if not self.models:
            return ["The trainer offers no model."]
        if self.model_info() is None:
            return ["Choose a model."]
        out = [p for p in (self.start_problem(),) if p]
        if self.split() is not None and self.totals().val == 0:
            out.append(f"No cell of the chosen images and kept classes is marked for "
                       f"validation in the column '{self.split_column}'.")
        out += self._value_problems()
        return out

    def _value_problems(self) -> list[str]:
        out = []

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not is_int(self.epochs) or self.epochs < 1:
            out.append(f"Epochs must be a whole number of at least 1, not {self.epochs!r}.")
        if not is_int(self.batch_size) or self.batch_size < 1:
            out.append(f"The batch size must be a whole number of at least 1, not "
                       f"{self.batch_size!r}.")
        if not self.lr > 0:
            out.append(f"The learning rate must be above 0, not {self.lr!r}.")
        if not self.weight_decay >= 0:
            out.append(f"The weight decay must be 0 or more, not {self.weight_decay!r}.")
        if not 0 < self.val_fraction < 1:
            out.append(f"The validation share must be between 0 and 1, not "
                       f"{self.val_fraction!r}.")
        if not is_int(self.seed) or self.seed < 0:
            out.append(f"The seed must be a whole number of 0 or more, not {self.seed!r}.")
        if not _is_device(self.device):
            out.append(f"Unknown device {self.device!r}: use auto, cpu, cuda:N or mps.")
        elif self.device == ALL_GPUS and self.devices_ready() and self.launch_plan()[1] < 2:
            found = len(self.devices.cuda) if self.devices is not None else 0
            out.append(f"Training on all GPUs needs two or more CUDA GPUs; {found} found here.")
        option = self.model_info()
        if option is not None and is_foundation(option) and self.run_mode() not in option.modes:
            out.append(f"Choose how {option.name} is adapted ({', '.join(option.modes)}).")
        return out
