"""The configuration of one training run.

Standard library only: the desktop app builds a :class:`RunConfig`, writes it as JSON and
starts ``python -m trainer train --config run.json``; the trainer writes the resolved
configuration (per-model defaults filled in) to ``config.json`` in the run folder and into
every model file, so a run can be repeated or resumed from either.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_VERSION = 1
CLASS_BALANCE_KINDS = ("none", "inverse", "effective")  # as trainer.engine.loss defines them
SCHEDULES = ("constant", "cosine")  # as trainer.engine.step.LrSchedule defines them


class ConfigError(ValueError):
    """A run configuration is malformed; the message names the file (if any) and the field."""


@dataclass
class RunConfig:
    """One training run. ``None`` means "the model's default" (see ``trainer.models``) or
    "automatic" (``compile`` and ``cuda_graph``: on for CUDA when they work)."""

    patchset: str  # the training patch set folder
    out_dir: str  # the run folder (created; config.json, events.jsonl, metrics.csv, models)
    model: str = "custom_vit"  # a name from trainer.models.list_models()
    flag_limit: int | None = None  # FlagLimit sampling cap per class; None = every labelled cell
    epochs: int | None = None  # None: the model's default
    batch_size: int = 512
    lr: float | None = None  # None: the model's default
    weight_decay: float | None = None  # None: the model's default (decoupled, AdamW)
    device: str = "auto"  # "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1", "mps"
    seed: int = 42
    patience: int = 10  # early stopping on validation accuracy; 0 disables it
    val_patchset: str | None = None  # a separate validation patch set (else a split of patchset)
    val_fraction: float = 0.2  # the stratified validation share when val_patchset is None
    augment: bool = True  # the study's 9.6x augmentation (4 orientations x colour subsets)
    mode: str | None = None  # foundation models: "lp" (linear probe) or "ft_last"
    weights: str | None = None  # foundation models: the local weights file
    model_args: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides
    compile: bool | None = None  # torch.compile the training step (None: auto, CUDA only)
    cuda_graph: bool | None = None  # capture the whole training step as one CUDA graph
    amp: str = "auto"  # "auto" (bf16 on CUDA, off elsewhere), "bf16", "off"
    eval_batch_size: int = 1024
    heartbeat_s: float = 1.0  # seconds between `batch` events
    num_threads: int | None = None  # torch CPU threads (None: torch's default)
    name: str | None = None  # a label for the run (the GUI's)
    # A model file (.cvmodel) of the same architecture whose weights start the run (fine-tuning
    # a saved model on new or corrected labels; head rows carried over by class name). None:
    # the model's own initialisation. Ignored when a run is resumed (its last file wins).
    init_from: str | None = None
    # ---- training options for small patches (issue 18); the defaults are today's recipe ----
    label_smoothing: float = 0.0  # cross-entropy label smoothing, in [0, 1)
    class_balance: str = "none"  # loss weights per class: "none", "inverse", "effective"
    class_balance_beta: float = 0.999  # beta of the effective number (class_balance effective)
    mixup: float = 0.0  # mixup's Beta(alpha, alpha); 0: off
    cutmix: float = 0.0  # CutMix's Beta(alpha, alpha); 0: off (both on: half the steps each)
    color_jitter: float = 0.0  # HED stain jitter strength (0.05 light, 0.2 strong); 0: off
    schedule: str | None = None  # learning rate: "constant" or "cosine"; None: the model's
    warmup_epochs: int | None = None  # linear warm-up epochs; None: the model's

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["config_version"] = CONFIG_VERSION
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run configuration") -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("config_version", CONFIG_VERSION)
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise ConfigError(f"{where}: config_version {version!r} is newer than this trainer")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        missing = [n for n in ("patchset", "out_dir") if n not in data]
        if missing:
            raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
        cfg = cls(**data)
        problems = cfg.problems()
        if problems:
            raise ConfigError(f"{where}: " + "; ".join(problems))
        return cfg

    @classmethod
    def from_json(cls, text: str, where: str = "run configuration") -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        return cls.from_dict(data, where)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        return cls.from_json(text, str(path))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    # ---- validation ----------------------------------------------------------------------
    def problems(self) -> list[str]:
        """What is wrong with the values (types and ranges), as messages naming the field.
        Whether the model and the patch set exist is checked by the trainer."""
        out: list[str] = []

        def check(name: str, ok: bool, what: str) -> None:
            if not ok:
                out.append(f"{name} must be {what}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        check("patchset", isinstance(self.patchset, str) and bool(self.patchset), "a path")
        check("out_dir", isinstance(self.out_dir, str) and bool(self.out_dir), "a path")
        check("model", isinstance(self.model, str) and bool(self.model), "a model name")
        check("flag_limit", self.flag_limit is None or (is_int(self.flag_limit)
                                                         and self.flag_limit > 0),
              "a positive integer or null")
        check("epochs", self.epochs is None or (is_int(self.epochs) and self.epochs > 0),
              "a positive integer or null")
        check("batch_size", is_int(self.batch_size) and self.batch_size > 0,
              "a positive integer")
        check("lr", self.lr is None or (is_num(self.lr) and self.lr > 0),
              "a positive number or null")
        check("weight_decay", self.weight_decay is None or (is_num(self.weight_decay)
                                                             and self.weight_decay >= 0),
              "a number >= 0 or null")
        check("device", isinstance(self.device, str) and (
            self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")),
            '"auto", "cpu", "cuda", "cuda:N" or "mps"')
        check("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0")
        check("patience", is_int(self.patience) and self.patience >= 0, "an integer >= 0")
        check("val_patchset", self.val_patchset is None or isinstance(self.val_patchset, str),
              "a path or null")
        check("val_fraction", is_num(self.val_fraction) and 0 < self.val_fraction < 1,
              "between 0 and 1")
        check("augment", isinstance(self.augment, bool), "true or false")
        check("mode", self.mode in (None, "lp", "ft_last"), '"lp", "ft_last" or null')
        check("weights", self.weights is None or isinstance(self.weights, str), "a path or null")
        check("init_from", self.init_from is None or (isinstance(self.init_from, str)
                                                       and bool(self.init_from)),
              "a model file path or null")
        check("model_args", isinstance(self.model_args, dict), "an object")
        check("compile", self.compile in (None, True, False), "true, false or null")
        check("cuda_graph", self.cuda_graph in (None, True, False), "true, false or null")
        check("amp", self.amp in ("auto", "bf16", "off"), '"auto", "bf16" or "off"')
        check("eval_batch_size", is_int(self.eval_batch_size) and self.eval_batch_size > 0,
              "a positive integer")
        check("heartbeat_s", is_num(self.heartbeat_s) and self.heartbeat_s > 0,
              "a positive number")
        check("num_threads", self.num_threads is None or (is_int(self.num_threads)
                                                           and self.num_threads > 0),
              "a positive integer or null")
        check("label_smoothing", is_num(self.label_smoothing)
              and 0 <= self.label_smoothing < 1, "a number in [0, 1)")
        check("class_balance", self.class_balance in CLASS_BALANCE_KINDS,
              " or ".join(f'"{k}"' for k in CLASS_BALANCE_KINDS))
        check("class_balance_beta", is_num(self.class_balance_beta)
              and 0 < self.class_balance_beta < 1, "a number between 0 and 1 (exclusive)")
        for name in ("mixup", "cutmix"):
            check(name, is_num(getattr(self, name)) and 0 <= getattr(self, name) <= 10,
                  "a Beta alpha in [0, 10] (0: off)")
        check("color_jitter", is_num(self.color_jitter) and 0 <= self.color_jitter <= 0.5,
              "a strength in [0, 0.5] (0: off)")
        check("schedule", self.schedule in (None, *SCHEDULES),
              " or ".join(f'"{k}"' for k in SCHEDULES) + " or null")
        check("warmup_epochs", self.warmup_epochs is None or (
            is_int(self.warmup_epochs) and self.warmup_epochs >= 0), "an integer >= 0 or null")
        warmup, epochs = self.warmup_epochs, self.epochs
        if isinstance(warmup, int) and isinstance(epochs, int) and 0 < epochs <= warmup:
            out.append(f"warmup_epochs ({warmup}) must be fewer than epochs ({epochs})")
        return out

    def validate(self) -> RunConfig:
        problems = self.problems()
        if problems:
            raise ConfigError("run configuration: " + "; ".join(problems))
        return self
