"""One training run: configuration in, model files and a report out, events all the way.

``run_training(config, sink=...)`` is the whole run (the ``train`` command is a thin wrapper):

1. check the configuration and the model name (an unknown model is refused before any work),
2. load the patch set(s) and split them (``trainer.engine.dataset``), pick the device,
3. build the model and the optimiser (per-model defaults from ``trainer.models``), the
   training data on the device and the fastest working training step
   (``trainer.engine.step``),
4. per epoch: one pass over the whole augmented training index (the study's epoch), then
   validation on the un-augmented validation cells; early stopping on validation accuracy;
   the last model (with the optimiser state, for resuming) and the best model written,
5. ``stopped`` with the reason, then ``finished`` with the model paths and metrics; the best
   model is evaluated on the validation cells into ``evaluation.json``/CSV.

Any failure becomes an ``error`` event with an actionable message (and exit code 1).

Under torchrun (several processes, ``trainer.engine.distributed``) every rank runs this same
story on its own device and share of each batch; only rank 0 writes events and files.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.mixing import mix_table
from trainer.data.stain_jitter import jitter_table
from trainer.engine import modelfile as mfile
from trainer.engine.dataset import prepare_data, save_split
from trainer.engine.device import (
    amp_dtype,
    configure_backends,
    device_name,
    prefers_channels_last,
    select_device,
    synchronize,
)
from trainer.engine.distributed import Dist
from trainer.engine.early_stopping import EarlyStopping
from trainer.engine.events import EventSink, MetricsCsv, stderr_log
from trainer.engine.infer import features_of, forward_batches
from trainer.engine.init_from import apply_initial_weights, load_init_file
from trainer.engine.loss import class_weights
from trainer.engine.step import (
    LrSchedule,
    StepData,
    build_stepper,
    epoch_permutation,
    make_optimizer,
)
from trainer.formats.catalog import TrainDefaults
from trainer.formats.config import ConfigError, RunConfig
from trainer.formats.errors import BadModelError, TrainerError, classify_exception
from trainer.formats.protocol import ErrorKind, StopReason
from trainer.metrics import ClassificationMetrics, classification_metrics

if TYPE_CHECKING:
    from trainer.models import ModelSpec
    from trainer.models.layers import CellClassifier

LAST_MODEL = "last" + mfile.EXTENSION
BEST_MODEL = "best" + mfile.EXTENSION
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"


@dataclass
class RunResult:
    status: str  # "finished" (all epochs or early stop), "stopped" (stop request), "error"
    reason: StopReason | None = None
    run_dir: Path | None = None
    best_path: Path | None = None
    last_path: Path | None = None
    metrics: dict = field(default_factory=dict)
    error_kind: ErrorKind | None = None
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "error" else 0


# ---- configuration ----------------------------------------------------------------------------
def check_config(cfg: RunConfig):
    """Everything that can be checked without touching data: values, model name, mode.
    Returns the model's spec."""
    from trainer.models import UnknownModelError, model_spec

    cfg.validate()
    try:
        spec = model_spec(cfg.model)
    except UnknownModelError as exc:
        raise TrainerError(str(exc), ErrorKind.UNKNOWN_MODEL) from exc
    if spec.kind == "foundation":
        if cfg.mode is not None and cfg.mode not in spec.modes:
            raise ConfigError(f"model {cfg.model!r} has no mode {cfg.mode!r} "
                              f"(modes: {', '.join(spec.modes)})")
    elif cfg.mode is not None:
        raise ConfigError(f"model {cfg.model!r} is trained from scratch: it takes no mode "
                          f"(got {cfg.mode!r})")
    if spec.kind == "foundation" and (cfg.mode or "lp") == "lp":
        on = [n for n in ("mixup", "cutmix", "color_jitter") if getattr(cfg, n)]
        if on:
            raise ConfigError(f"{', '.join(on)}: linear probing trains the head on backbone "
                              "features computed once, so image-level augmentation cannot "
                              "apply (use mode ft_last, or leave them at 0)")
    return spec


def resolve_config(cfg: RunConfig, spec: ModelSpec) -> tuple[RunConfig, TrainDefaults]:
    """Fill in the model's defaults (epochs, learning rate, weight decay, mode)."""
    mode = cfg.mode
    if spec.kind == "foundation" and mode is None:
        mode = "lp"
    defaults = spec.defaults_for(mode) if spec.kind == "foundation" else spec.defaults
    resolved = cfg.replace(
        mode=mode,
        epochs=cfg.epochs if cfg.epochs is not None else defaults.epochs,
        lr=cfg.lr if cfg.lr is not None else defaults.lr,
        weight_decay=cfg.weight_decay if cfg.weight_decay is not None else defaults.weight_decay,
        schedule=cfg.schedule if cfg.schedule is not None else defaults.schedule,
        warmup_epochs=(cfg.warmup_epochs if cfg.warmup_epochs is not None
                       else defaults.warmup_epochs),
    )
    return resolved, defaults


def _model_kwargs(cfg: RunConfig, spec) -> dict:
    kwargs = dict(cfg.model_args)
    if spec.kind == "foundation":
        kwargs["mode"] = cfg.mode
        if cfg.weights:
            kwargs["weights"] = cfg.weights
    return kwargs


# ---- the run ------------------------------------------------------------------------------------
class _Run:
    """The state of one run (kept in one object so the steps read as a story)."""

    def __init__(self, cfg: RunConfig, sink: EventSink, stop, on_model, resume_from: Path | None,
                 log: Callable[[str], None], dist: Dist) -> None:
        self.cfg, self.sink, self.on_model = cfg, sink, on_model
        self.dist = dist
        self.main = dist.is_main  # the one process that writes events and files
        self.stop_ranks: list[int] = []  # the ranks that asked for the stop that ended the run
        self.position: tuple[int, int] | None = None  # (epoch, steps done) not yet saved
        # a threading.Event, or a StopControl (which also knows where the request came from)
        self.stop_control = stop
        self.stop: threading.Event = getattr(stop, "event", stop)
        self.resume_from, self.log = resume_from, log
        self.t0 = time.monotonic()
        self.elapsed_before = 0.0
        self.run_dir: Path | None = None
        self.best_metrics: dict = {}
        self.best_eval: ClassificationMetrics | None = None

    def notice(self, message: str) -> None:
        self.log(message)
        self.sink.emit("notice", message=message)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t0

    # -- set-up ---------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        resume_mf = None
        if self.resume_from is not None:
            resume_mf = mfile.load_model_file(self.resume_from, with_optimizer=True)
            if resume_mf.arch != cfg.model:
                raise ConfigError(f"{self.resume_from}: is a {resume_mf.arch!r} model, the "
                                  f"configuration trains {cfg.model!r}")
            if "train_state" not in resume_mf.meta or resume_mf.optimizer_state is None:
                raise ConfigError(f"{self.resume_from}: has no training state to resume "
                                  f"from (use the run's {LAST_MODEL})")
        init_mf = None
        if cfg.init_from and resume_mf is None:  # refused before any data is read
            init_mf = load_init_file(cfg.init_from, cfg.model)
        spec = check_config(cfg)
        cfg, defaults = resolve_config(cfg, spec)
        # resolve_config filled these in; kept as the plain numbers they now are
        assert cfg.epochs is not None and cfg.lr is not None and cfg.weight_decay is not None
        self.epochs, self.lr, self.weight_decay = cfg.epochs, cfg.lr, cfg.weight_decay
        self.cfg, self.spec, self.defaults = cfg, spec, defaults
        device = self.dist.rank_device(select_device(cfg.device))
        self.dist.init(device)
        configure_backends(device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = device
        self.amp = amp_dtype(device, cfg.amp)

        data = prepare_data(cfg)
        self.data = data
        if resume_mf is not None and resume_mf.classes != data.classes:
            raise ConfigError(f"{self.resume_from}: its classes {resume_mf.classes} differ "
                              f"from the patch set's {data.classes}")
        run_dir = Path(cfg.out_dir)
        self.run_dir = run_dir
        self.metrics_csv = MetricsCsv(run_dir / METRICS_FILE)
        if self.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.sink.open_run_dir(run_dir)
            cfg.save(run_dir / CONFIG_FILE)
            save_split(run_dir, data)
        for note in data.notes:
            self.notice(note)

        torch.manual_seed(cfg.seed)
        from trainer.models import count_parameters, create_model

        self.model_kwargs = _model_kwargs(cfg, spec)
        try:  # the options a model file of this run will hold: within the schema's bounds
            mfile.check_model_options(f"the run's model_args for {cfg.model}", cfg.model,
                                      len(data.classes), self.model_kwargs)
        except BadModelError as exc:
            raise ConfigError(str(exc)) from exc
        model = create_model(cfg.model, len(data.classes), **self.model_kwargs)
        if self.dist.active:  # the same initial weights, but each rank its own dropout masks
            torch.manual_seed(int(np.random.SeedSequence([cfg.seed, self.dist.rank])
                                  .generate_state(1)[0]))
        if self.on_model is not None:
            self.on_model(model)
        self.partial = spec.kind == "foundation"
        if resume_mf is not None:
            model.load_state_dict(resume_mf.state_dict, strict=not self.partial)
        self.init_report = None
        if init_mf is not None:
            self.init_report = apply_initial_weights(model, init_mf, data.classes,
                                                     partial=self.partial)
            self.notice(self.init_report.describe())
        self.channels_last = prefers_channels_last(model, device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(device).train()
        self.forward_module: torch.nn.Module | None = None  # DDP's wrapper, on several ranks
        self.n_params = count_parameters(model)
        self.n_trainable = count_parameters(model, trainable_only=True)
        self.lp = spec.kind == "foundation" and cfg.mode == "lp"
        self.whitened = spec.input_mode == "whitened"

        self._setup_data_on_device(resume_mf)
        self._setup_training(resume_mf)

    def _setup_data_on_device(self, resume_mf) -> None:
        from trainer.data.whiten import augmented_mean_image, mean_image
        from trainer.formats.augment_plan import build_augmented_index, plain_index

        cfg, data, device = self.cfg, self.data, self.device
        n = len(data.train_y)
        plan = build_augmented_index(n, cfg.seed) if cfg.augment else plain_index(n)
        if resume_mf is not None:
            mean = resume_mf.mean_image.numpy()
        elif cfg.augment:  # on a CUDA GPU in a blink; on the CPU seconds for 500k samples
            on_gpu = device.type == "cuda"
            mean = augmented_mean_image(data.train_u8, plan, device=str(device) if on_gpu
                                        else "cpu", chunk=8192 if on_gpu else 1024)
        else:
            mean = mean_image(data.train_u8)
        self.mean_cpu = torch.from_numpy(np.ascontiguousarray(mean, dtype=np.float32))
        if self.dist.active:  # bit for bit rank 0's, whatever each device's arithmetic
            self.mean_cpu = self.dist.broadcast(self.mean_cpu.to(device)).cpu()
        mean_t = self.mean_cpu.to(device) if self.whitened else None
        self.mean_t = mean_t
        train_u8 = torch.from_numpy(data.train_u8).to(device)
        train_y = torch.from_numpy(data.train_y).to(device)
        plan_t = torch.from_numpy(plan).to(device)
        self.val_y = torch.from_numpy(data.val_y).to(device)
        self.n_train_augmented = len(plan)
        weights = class_weights(data.train_y, len(data.classes), cfg.class_balance,
                                cfg.class_balance_beta)
        class_weight = None if weights is None else torch.from_numpy(weights).to(device)
        self.class_weights = None if weights is None else [float(w) for w in weights]
        if self.lp:
            # The backbone is frozen (and in eval mode): its features of every augmented entry
            # are computed once and the head trains on them: the study's result at a fraction
            # of its cost.
            self.notice(f"linear probing: computing backbone features of {len(plan):,} "
                        f"training and {len(data.val_y):,} validation samples once")
            self.model.eval()
            feats = features_of(self.model, train_u8, device, plan=plan_t, mean=None,
                                amp_dtype=self.amp, batch_size=cfg.eval_batch_size)
            self.val_inputs = features_of(self.model, data.val_u8, device, mean=None,
                                          amp_dtype=self.amp, batch_size=cfg.eval_batch_size)
            self.model.train()
            self.step_data = StepData(inputs=feats, labels=train_y[plan_t[:, 0]],
                                      class_weight=class_weight,
                                      label_smoothing=cfg.label_smoothing)
            self.val_kind = "features"
            del train_u8
        else:
            self.step_data = StepData(inputs=train_u8, labels=train_y, plan=plan_t, mean=mean_t,
                                      augment=cfg.augment, class_weight=class_weight,
                                      label_smoothing=cfg.label_smoothing,
                                      color_jitter=cfg.color_jitter > 0)
            self.val_inputs = torch.from_numpy(data.val_u8).to(device)
            self.val_kind = "patches"
        if self.dist.active:
            self.forward_module = self._wrap_ddp()

    def _wrap_ddp(self) -> torch.nn.Module:
        """The model as the training step calls it on several ranks: DistributedDataParallel
        averages the gradients in backward. Linear probing wraps just the head's forward
        (the frozen backbone's buffers are not broadcast each step)."""
        from torch.nn.parallel import DistributedDataParallel

        target: torch.nn.Module = _HeadForward(self.model) if self.lp else self.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        if not self.lp:
            return DistributedDataParallel(target, device_ids=ids)
        with warnings.catch_warnings():  # newer torch renames the option, keeping the old
            warnings.simplefilter("ignore", FutureWarning)
            return DistributedDataParallel(target, device_ids=ids, broadcast_buffers=False)

    def _setup_training(self, resume_mf) -> None:
        cfg, device = self.cfg, self.device
        m = self.step_data.n_entries
        batch = cfg.batch_size
        if batch > m:
            self.notice(f"batch size {batch} is larger than the {m} training samples per "
                        f"epoch; using {m}")
            batch = m
        world = self.dist.world
        if world > 1 and batch % world:
            if batch < world:
                raise ConfigError(f"batch size {batch} is smaller than the {world} processes")
            self.notice(f"batch size {batch} is not a multiple of the {world} processes; "
                        f"using {batch // world * world} ({batch // world} per process)")
            batch = batch // world * world
        self.batch = batch  # the global batch: every rank steps batch / world of it
        self.rank_batch = batch // world
        self.steps = m // batch
        schedule_kind = cfg.schedule or "constant"  # resolve_config filled both in
        warmup_epochs = int(cfg.warmup_epochs or 0)
        self.schedule = LrSchedule(self.lr, schedule_kind, warmup_epochs * self.steps,
                                   self.epochs * self.steps)
        opt_kind = getattr(self.defaults, "optimizer", "adamw")

        def factory(graph: bool) -> torch.optim.Optimizer:
            return make_optimizer(self.model, opt_kind, self.lr, self.weight_decay, device, graph)

        cuda = device.type == "cuda"
        want_compile = cfg.compile if cfg.compile is not None else cuda
        want_graph = cfg.cuda_graph if cfg.cuda_graph is not None else cuda
        if want_graph and not cuda:
            self.notice("CUDA graphs need a CUDA device: training without")
        if self.dist.active:
            # DDP's gradient all-reduce runs in backward hooks, outside a captured graph; and a
            # compile that fails on one rank only would leave the others waiting
            if want_graph and cuda:
                self.notice("CUDA graphs are off when training on several processes")
            want_graph = False
            want_compile = bool(cfg.compile)
        self.start_epoch, self.start_step, self.global_step = 1, 0, 0
        self.partial_sums = (0.0, 0)
        self.early = EarlyStopping(patience=cfg.patience, max_epochs=self.epochs)
        opt_state = None
        if resume_mf is not None:
            ts = resume_mf.meta["train_state"]
            opt_state = resume_mf.optimizer_state
            self.elapsed_before = float(ts.get("elapsed_s", 0.0))
            self.early = EarlyStopping.from_state(ts["early_stopping"], patience=cfg.patience,
                                                  max_epochs=self.epochs)
            self.best_metrics = resume_mf.meta.get("best_metrics", {})
            same_batches = ts.get("batch_size") == batch and ts.get("steps") == self.steps
            if ts.get("epoch_complete", True):
                self.start_epoch = int(ts["epoch"]) + 1
            elif same_batches:
                self.start_epoch, self.start_step = int(ts["epoch"]), int(ts["step"])
                self.partial_sums = (float(ts.get("loss_sum", 0.0)), int(ts.get("correct", 0)))
            else:
                self.start_epoch = int(ts["epoch"])
                self.notice("the batch size changed: the interrupted epoch restarts")
            self.global_step = int(ts.get("global_step", 0))
            if self.main:
                self.metrics_csv.truncate_after(self.start_epoch - 1)
            if self.dist.active and not self.main:  # the global sums are rank 0's to carry
                self.partial_sums = (0.0, 0)
            elif self.dist.active:
                self.partial_sums = (self.partial_sums[0] * world, self.partial_sums[1])
        self.stepper = build_stepper(
            self.model, factory, self.step_data, self.rank_batch, device, self.amp,
            self.schedule,
            forward="head" if self.lp else "model", want_compile=want_compile,
            want_graph=want_graph, optimizer_state=opt_state, global_step=self.global_step,
            notice=self.notice, channels_last=self.channels_last,
            forward_module=self.forward_module, mixing=cfg.mixup > 0 or cfg.cutmix > 0)

    # -- model files ----------------------------------------------------------------------
    def _meta(self, metrics: dict, train_state: dict | None) -> dict:
        meta = {
            "arch": self.cfg.model,
            "arch_kwargs": self.model_kwargs,
            "num_classes": len(self.data.classes),
            "classes": self.data.classes,
            "input_mode": self.spec.input_mode,
            "patch_size": 40,
            "fov_px": self.data.fov_px,
            "partial_state": self.partial,
            "config": self.cfg.to_dict(),
            "metrics": metrics,
            "best_metrics": self.best_metrics,
            "n_params": self.n_params,
            "class_weights": self.class_weights,
            "data": self._data_meta(metrics),
        }
        if train_state is not None:
            meta["train_state"] = train_state
        return meta

    def _data_meta(self, metrics: dict) -> dict:
        """How much data trained this model, kept in the file itself so that a model shared
        without its run folder still says it (the ``started`` event has the same counts)."""
        cfg, data = self.cfg, self.data
        out = {
            "n_train": len(data.train_y),
            "n_train_augmented": self.n_train_augmented,
            "n_val": len(data.val_y),
            "flag_limit": cfg.flag_limit,
            "kept_classes": list(data.classes),
            "excluded_classes": list(data.excluded_classes),
            "patchset": str(Path(data.patchset.path or cfg.patchset).resolve()),
            "val_patchset": (str(Path(data.val_source.path or cfg.val_patchset).resolve())
                             if cfg.val_patchset else None),
        }
        if metrics.get("epoch") is not None:  # completed epochs when this file was written
            out["epochs_run"] = int(metrics["epoch"])
        return out

    def _state_dict(self) -> dict:
        if self.partial:
            return mfile.trainable_state_dict(self.model)
        return self.model.state_dict()

    def save(self, kind: str, metrics: dict, train_state: dict | None) -> Path:
        assert self.run_dir is not None
        path = self.run_dir / (LAST_MODEL if kind == "last" else BEST_MODEL)
        if not self.main:  # rank 0 writes; its model is every rank's (DDP keeps them equal)
            return path
        mfile.save_model_file(
            path, state_dict=self._state_dict(), mean_image=self.mean_cpu,
            meta=self._meta(metrics, train_state),
            optimizer_state=self.stepper.optimizer.state_dict() if kind == "last" else None)
        self.sink.emit("checkpoint", kind=kind, path=str(path), epoch=metrics.get("epoch"),
                       val_acc=metrics.get("val_acc"))
        return path

    def train_state(self, epoch: int, step: int, complete: bool, sums=(0.0, 0)) -> dict:
        return {"epoch": epoch, "step": step, "steps": self.steps, "batch_size": self.batch,
                "epoch_complete": complete, "global_step": self.stepper.global_step,
                "loss_sum": sums[0], "correct": sums[1],
                "early_stopping": self.early.state(), "elapsed_s": self.elapsed()}

    # -- validation -----------------------------------------------------------------------
    def validate(self) -> tuple[float, ClassificationMetrics]:
        """Validation metrics; on several ranks each runs its slice of the cells and the
        logits are gathered, so every rank computes the same metrics."""
        self.model.eval()
        n = len(self.val_inputs)
        part = self.dist.val_slice(n)
        if part.stop > part.start:
            logits, _ = forward_batches(self.model, self.val_inputs[part], self.device,
                                        mean=self.mean_t, amp_dtype=self.amp,
                                        batch_size=self.cfg.eval_batch_size,
                                        kind=self.val_kind, channels_last=self.channels_last)
        else:
            logits = torch.zeros((0, len(self.data.classes)), device=self.device)
        logits = self.dist.gather_rows(logits.float(), n)
        val_loss = float(F.cross_entropy(logits, self.val_y))
        preds = logits.argmax(dim=1).cpu().numpy()
        self.model.train()
        return val_loss, classification_metrics(self.data.val_y, preds, len(self.data.classes))

    # -- the loop -------------------------------------------------------------------------
    def started(self) -> None:
        cfg, data = self.cfg, self.data
        self.sink.emit(
            "started", run_dir=str(self.run_dir), config=cfg.to_dict(), model=cfg.model,
            device=str(self.device), device_name=device_name(self.device),
            fast_path=self.stepper.name, channels_last=self.channels_last,
            amp=str(self.amp).replace("torch.", "") if self.amp else "off",
            params=self.n_params, trainable_params=self.n_trainable,
            classes=data.classes, excluded_classes=data.excluded_classes,
            n_train=len(data.train_y), n_train_augmented=self.n_train_augmented,
            n_val=len(data.val_y), batch_size=self.batch, steps_per_epoch=self.steps,
            processes=self.dist.world, batch_per_process=self.rank_batch,
            epochs=cfg.epochs, start_epoch=self.start_epoch, lr=cfg.lr,
            weight_decay=cfg.weight_decay, schedule=self.schedule.kind,
            warmup_steps=self.schedule.warmup_steps, class_weights=self.class_weights,
            resumed_from=str(self.resume_from) if self.resume_from else None,
            init_from=str(self.init_report.path) if self.init_report else None,
            init_classes_matched=self.init_report.matched if self.init_report else [],
            init_classes_new=self.init_report.new if self.init_report else [])

    def finish(self, reason: StopReason, epoch: int, detail: str = "") -> RunResult:
        self.sink.emit("stopped", reason=reason, epoch=epoch, detail=detail)
        assert self.run_dir is not None
        best = self.run_dir / BEST_MODEL
        last = self.run_dir / LAST_MODEL
        model_path = best if best.exists() else (last if last.exists() else None)
        if best.exists() and reason != StopReason.STOP_REQUEST and self.main:
            self._write_evaluation(best)
        self.sink.emit(
            "finished", reason=reason, model_path=str(model_path) if model_path else None,
            last_model_path=str(last) if last.exists() else None, run_dir=str(self.run_dir),
            best_epoch=self.early.best_epoch or None, epochs_run=self.early.last_epoch,
            elapsed_s=round(self.elapsed(), 3), metrics=self.best_metrics,
            classes=self.data.classes)
        status = "stopped" if reason == StopReason.STOP_REQUEST else "finished"
        return RunResult(status, reason, self.run_dir, best if best.exists() else None,
                         last if last.exists() else None, dict(self.best_metrics))

    def _write_evaluation(self, best: Path) -> None:
        """The best model's evaluation on the validation cells (evaluation.json and CSVs)."""
        try:
            from trainer.evaluate import evaluate_model, write_report

            assert self.run_dir is not None
            if self.best_eval is not None:
                write_report(self.run_dir, self.best_eval, self.data.classes,
                             {"model": str(best), "data": "the run's validation cells"})
            else:  # resumed, and no better epoch since: evaluate the best file itself
                evaluate_model(best, device=str(self.device), out_dir=self.run_dir,
                               batch_size=self.cfg.eval_batch_size)
        except Exception as exc:  # a report that cannot be written must not fail the run
            self.notice(f"could not write the evaluation report: {exc}")

    def loop(self) -> RunResult:
        cfg, stepper, steps, batch = self.cfg, self.stepper, self.steps, self.batch
        epoch_times: list[float] = []
        n_entries = self.step_data.n_entries
        self.started()
        if self.start_epoch > self.epochs:
            self.notice(f"the run already trained {self.epochs} epochs; nothing to do "
                        "(give more --epochs to continue)")
            return self.finish(StopReason.FINISHED, self.epochs, "nothing left to train")
        for epoch in range(self.start_epoch, self.epochs + 1):
            start_step = self.start_step if epoch == self.start_epoch else 0
            sums = self.partial_sums if epoch == self.start_epoch else (0.0, 0)
            self.set_epoch_tables(epoch)
            stepper.start_epoch(self.epoch_entries(epoch, n_entries), start_step, *sums)
            self.position = (epoch, start_step)
            t_epoch = time.monotonic()
            last_beat = t_epoch
            step = start_step
            interrupted = False
            while step < steps:
                stepper.step()
                step += 1
                self.position = (epoch, step)
                if step >= steps:
                    break
                now = time.monotonic()
                stop, beat = self.agree(now - last_beat >= cfg.heartbeat_s)
                if stop:
                    interrupted = True
                    break
                if beat:
                    last_beat = now
                    loss_sum, correct = self.read_sums()
                    if not math.isfinite(loss_sum):
                        break
                    rate = (step - start_step) * batch / max(now - t_epoch, 1e-9)
                    left = (steps - step) * batch / max(rate, 1e-9)
                    per_epoch = np.mean(epoch_times) if epoch_times else steps * batch / rate
                    self.sink.emit(
                        "batch", epoch=epoch, epochs=self.epochs, step=step, steps=steps,
                        train_loss=loss_sum / step, train_acc=correct / (step * batch),
                        samples_per_s=round(rate, 1), elapsed_s=round(self.elapsed(), 3),
                        eta_s=round(left + per_epoch * (self.epochs - epoch), 1))
            loss_sum, correct = self.read_sums()
            synchronize(self.device)
            if interrupted:
                state = self.train_state(epoch, step, False, (loss_sum, correct))
                self.save("last", {"epoch": epoch - 1, "partial_epoch": epoch, "step": step},
                          state)
                return self.finish(StopReason.STOP_REQUEST, epoch - 1,
                                   f"stopped at step {step}/{steps} of epoch {epoch} "
                                   f"({self.stop_source()})")
            train_s = time.monotonic() - t_epoch
            train_loss = loss_sum / max(step, 1)
            if not math.isfinite(train_loss):
                self.early.update(epoch, float("nan"), train_loss)
                return self.finish(StopReason.NON_FINITE_LOSS, epoch - 1,
                                   f"the training loss became {train_loss} in epoch {epoch}; "
                                   "try a lower learning rate")
            train_acc = correct / (steps * batch)
            val_loss, m = self.validate()
            epoch_s = time.monotonic() - t_epoch
            epoch_times.append(epoch_s)
            decision = self.early.update(epoch, m.accuracy, train_loss)
            metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                       "val_loss": val_loss, "val_acc": m.accuracy, "macro_f1": m.macro_f1,
                       "macro_precision": m.macro_precision, "macro_recall": m.macro_recall,
                       "balanced_accuracy": m.balanced_accuracy}
            if decision.improved:
                self.best_metrics = metrics
                self.best_eval = m
            rate = (steps - start_step) * batch / max(train_s, 1e-9)
            remaining = self.epochs - epoch
            self.sink.emit(
                "epoch", epoch=epoch, epochs=self.epochs, train_loss=train_loss,
                train_acc=train_acc, val_loss=val_loss, val_acc=m.accuracy,
                macro_f1=m.macro_f1, lr=stepper.lr, samples_per_s=round(rate, 1),
                epoch_s=round(epoch_s, 3), elapsed_s=round(self.elapsed(), 3),
                eta_s=round(float(np.mean(epoch_times[-5:])) * remaining, 1),
                best_val_acc=self.early.best, best_epoch=self.early.best_epoch,
                improved=decision.improved)
            if self.main:
                self.metrics_csv.append({**metrics, "lr": stepper.lr, "samples_per_s": rate,
                                         "epoch_s": epoch_s, "elapsed_s": self.elapsed()})
            self.save("last", metrics, self.train_state(epoch, steps, True))
            self.position = None
            if decision.improved:
                self.save("best", metrics, None)
            if decision.stop:
                detail = ""
                if decision.reason == StopReason.EARLY_STOP:
                    detail = (f"validation accuracy has not improved for {cfg.patience} epochs "
                              f"(best {self.early.best:.4f} at epoch {self.early.best_epoch})")
                assert decision.reason is not None  # a decision to stop always has one
                return self.finish(decision.reason, epoch, detail)
            if self.agree(False)[0]:
                return self.finish(StopReason.STOP_REQUEST, epoch,
                                   f"stopped after epoch {epoch} ({self.stop_source()})")
        return self.finish(StopReason.FINISHED, self.epochs)

    # -- what the ranks share ---------------------------------------------------------
    def epoch_entries(self, epoch: int, n_entries: int) -> np.ndarray:
        """The entries this process trains on in ``epoch``, in order: the epoch's permutation,
        or this rank's share of each of its global batches."""
        perm = epoch_permutation(self.cfg.seed, epoch, n_entries)
        if not self.dist.active:
            return perm
        from trainer.engine.distributed import rank_share

        return rank_share(perm, self.steps, self.batch, self.dist.world, self.dist.rank)

    def set_epoch_tables(self, epoch: int) -> None:
        """The epoch's mixing and stain-jitter draws: functions of (seed, epoch) only, the
        same on every rank and after a resume."""
        cfg = self.cfg
        mix = jitter = None
        if cfg.mixup > 0 or cfg.cutmix > 0:
            mix = mix_table(cfg.seed, epoch, self.steps, self.step_data.inputs.shape[1],
                            cfg.mixup, cfg.cutmix)
        if cfg.color_jitter > 0:
            jitter = jitter_table(cfg.seed, epoch, self.step_data.n_entries, cfg.color_jitter)
        if mix is not None or jitter is not None:
            self.stepper.set_epoch_tables(mix, jitter)

    def agree(self, beat_due: bool) -> tuple[bool, bool]:
        """(stop, heartbeat) as all ranks agree: a stop asked for on any rank, rank 0's
        heartbeat. Called at the same points of the loop on every rank."""
        stop, beat, asked = self.dist.agree(self.stop.is_set(), beat_due)
        if stop:
            self.stop_ranks = asked
        return stop, beat

    def read_sums(self) -> tuple[float, int]:
        """The epoch's (sum of batch-mean losses, correct predictions) of the global batch."""
        return self.dist.sums(*self.stepper.read())

    def stop_source(self) -> str:
        own = getattr(self.stop_control, "source", None) if self.stop.is_set() else None
        others = [r for r in self.stop_ranks if r != self.dist.rank]
        if not own and others:
            return f"a stop request to training process rank {others[0]}"
        return own or "stop request"

    # -- when another rank fails ----------------------------------------------------------
    def save_after_peer_failure(self) -> None:
        """Rank 0's last model at the last completed step, when another rank failed mid-epoch
        (gloo only: a GPU may still wait on an NCCL collective that never completes). The
        epoch's loss and accuracy so far are rank 0's own (the others' are gone)."""
        if not (self.main and self.position is not None and self.dist.backend == "gloo"):
            return
        epoch, step = self.position
        if step <= 0:
            return
        loss_sum, correct = self.stepper.read()
        state = self.train_state(epoch, step, False, (loss_sum, correct * self.dist.world))
        self.save("last", {"epoch": epoch - 1, "partial_epoch": epoch, "step": step}, state)

    def resume_hint(self) -> str:
        last = self.run_dir / LAST_MODEL if self.run_dir is not None else None
        if last is None or not last.is_file():
            return "No model file was saved yet: start the run again."
        return (f"Its last model file {last} resumes it (python -m trainer train --resume "
                f"{self.run_dir}).")


class _HeadForward(torch.nn.Module):
    """A model's ``forward_head`` as a module's forward, for DDP (linear probing)."""

    def __init__(self, model: CellClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(x)


def run_training(
    cfg: RunConfig,
    *,
    sink: EventSink | None = None,
    stop=None,
    resume_from: str | Path | None = None,
    on_model: Callable[[torch.nn.Module], None] | None = None,
    log: Callable[[str], None] = stderr_log,
    dist: Dist | None = None,
) -> RunResult:
    """Train one run; never raises for a failed run (it reports an ``error`` event and returns
    a result with ``status == "error"``). ``stop``: set it to stop cleanly after the current
    batch. ``resume_from``: a run's last model file to continue from. ``on_model`` is called
    with the freshly built model (before training), e.g. to register hooks. ``stop`` is a
    ``threading.Event`` or a :class:`trainer.engine.control.StopControl`. ``dist``: this
    process's rank under torchrun (``trainer.engine.distributed.from_env``); default one
    process."""
    sink = sink if sink is not None else EventSink()
    stop = stop if stop is not None else threading.Event()
    dist = dist if dist is not None else Dist()
    run = _Run(cfg, sink, stop, on_model, Path(resume_from) if resume_from else None, log, dist)
    try:
        run.setup()
        result = run.loop()
    except KeyboardInterrupt:
        result = _error(run, ErrorKind.INTERNAL, "interrupted (Ctrl-C twice)")
    except Exception as exc:  # reported as an event: the reader must always learn the end
        failure = dist.peer_failure(exc, "") if dist.active else None
        if failure is not None and dist.is_main:
            try:
                run.save_after_peer_failure()
            except Exception as save_exc:  # the failure report matters more than the file
                log(f"could not save the last model after the failure: {save_exc}")
            failure = dist.peer_failure(exc, run.resume_hint())
        if failure is not None:
            exc = failure
        kind, message = classify_exception(exc)
        if kind == ErrorKind.INTERNAL:
            import traceback

            traceback.print_exc()
        if dist.active and failure is None:  # this rank's own failure: rank 0 names it
            dist.report_failure(message)
        result = _error(run, kind, message)
    sink.close()
    if result.status != "error":
        dist.close()
    return result


def _error(run: _Run, kind: ErrorKind, message: str) -> RunResult:
    if not run.main:  # its events go nowhere: say it on stderr (torchrun shows it)
        stderr_log(f"rank {run.dist.rank}: error ({kind.value}): {message}")
    run.sink.emit("error", kind=kind, message=message)
    return RunResult("error", None, run.run_dir, error_kind=kind, error=message)
