"""One detector training run: ``run_detector_training(config, sink=...)``, the body of
``python -m trainer train-detector``.

The run folder is laid out like a classifier run's (``trainer.engine.loop``): ``config.json``
(the configuration), ``events.jsonl`` (the protocol's events, also on stdout), ``metrics.csv``
(one row per epoch), ``split.json`` (which areas trained and which validated), ``last.cvmodel``
(with the optimiser state, for resuming) and ``best.cvmodel`` (the best validation F1).

An epoch is ``steps_per_epoch`` batches of random crops (``trainer.detect.data.CropSampler``;
its generator seeded by the run's seed and the epoch, so a resumed run draws the same crops).
The loss is CenterNet's penalty-reduced focal loss on the heatmap, weighted by the areas'
loss weights (0 outside a region, and far from every label where labels are partial). After
each epoch the validation areas are detected on (tiled, as in use) and the probability
threshold with the best F1 (one-to-one matching within ``match_radius_px``) becomes the
model's own threshold, written into its file; with partial labels only the detections near
a label are judged (:func:`near_a_label`). Stopping (``stop`` on stdin, SIGTERM, SIGINT)
finishes the batch in flight and writes ``last.cvmodel``; ``--resume`` restarts the
interrupted epoch from that file.
"""

from __future__ import annotations

import csv
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainer.detect import model as net
from trainer.detect.data import Area, CropSampler, areas_from_points, prepare, read_regions
from trainer.detect.infer import Detector
from trainer.detect.match import best_threshold
from trainer.detect.modelfile import load_detector_file, save_detector_file
from trainer.engine.device import device_name, select_device
from trainer.engine.events import EventSink, stderr_log
from trainer.engine.loop import BEST_MODEL, CONFIG_FILE, LAST_MODEL, METRICS_FILE, RunResult
from trainer.formats.config import ConfigError
from trainer.formats.detector_config import DetectorRunConfig
from trainer.formats.errors import classify_exception
from trainer.formats.protocol import ErrorKind, StopReason

SPLIT_FILE = "split.json"
METRICS_COLUMNS = ("epoch", "train_loss", "val_precision", "val_recall", "val_f1", "threshold",
                   "n_val_detections", "lr", "samples_per_s", "epoch_s", "elapsed_s")
LOW_THRESHOLD = 0.05  # validation detects at this threshold, then picks the best one above


def focal_loss(logits: torch.Tensor, target: torch.Tensor, pos: torch.Tensor,
               weight: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, per centre: -(1-p)^a log p at the centres,
    -(1-t)^b p^a log(1-p) elsewhere (near a centre the Gaussian target t forgives a high p),
    each pixel times its weight."""
    logp = torch.nn.functional.logsigmoid(logits)
    log1mp = torch.nn.functional.logsigmoid(-logits)
    p = logp.exp()
    pos_term = -((1 - p) ** alpha) * logp * pos
    neg_term = -((1 - target) ** beta) * (p ** alpha) * log1mp * (1 - pos)
    n = (pos * weight).sum().clamp(min=1.0)
    return ((pos_term + neg_term) * weight).sum() / n


def near_a_label(xy: np.ndarray, labels: np.ndarray, distance: float) -> np.ndarray:
    """The detections within ``distance`` of a label. With partial labels, validation judges
    only these: what lies farther from every label is what the loss ignores too, and an
    unlabelled nucleus there would count as a false positive and push the chosen threshold
    up (on CRC the best-F1 threshold went from 0.325 to 0.225 this way, recall on the
    validation tiles from 0.70 to 0.86)."""
    if len(xy) == 0 or len(labels) == 0:
        return np.zeros(len(xy), bool)
    from scipy.spatial import cKDTree

    d, _ = cKDTree(labels).query(xy)
    return np.asarray(d <= distance, bool)


def detector_settings(cfg: DetectorRunConfig, threshold: float) -> dict:
    f = cfg.work_downsample
    d_work = cfg.diameter_px / f
    nms = max(1, int(round(0.25 * d_work)))
    m = 2 ** cfg.depth
    halo = -(-(net.receptive_radius(cfg.depth) + nms + 2) // m) * m
    return {"diameter_px": float(cfg.diameter_px), "downsample": f, "sigma_px": d_work / 4,
            "nms_radius": nms, "threshold": float(threshold), "halo": halo}


def load_areas(cfg: DetectorRunConfig) -> list[Area]:
    areas: list[Area] = []
    if cfg.points is not None:
        areas += areas_from_points(cfg.points, cfg.images, cfg.image_list)
    if cfg.regions is not None:
        areas += read_regions(cfg.regions)
    return areas


def split_areas(areas: list[Area], fraction: float, seed: int
                ) -> tuple[list[Area], list[Area], str | None]:
    """(train, validation, note): a seeded share of the areas validates; with one area (or
    ``fraction`` 0) the training areas validate too, and the note says so."""
    n_val = int(round(fraction * len(areas)))
    if len(areas) < 2 or n_val == 0:
        return areas, areas, ("the threshold is chosen on the training areas themselves "
                              f"({len(areas)} area(s); no separate validation)")
    order = np.random.default_rng(seed).permutation(len(areas))
    val = sorted(order[:n_val].tolist())
    return ([a for i, a in enumerate(areas) if i not in set(val)], [areas[i] for i in val],
            None)


class _Run:
    def __init__(self, cfg: DetectorRunConfig, sink: EventSink, stop, resume_from: Path | None,
                 log: Callable[[str], None]) -> None:
        self.cfg, self.sink, self.log = cfg, sink, log
        self.stop_control = stop
        self.stop: threading.Event = getattr(stop, "event", stop)
        self.resume_from = resume_from
        self.t0 = time.monotonic()
        self.elapsed_before = 0.0
        self.run_dir: Path | None = None
        self.best_f1, self.best_epoch = -1.0, 0
        self.best_metrics: dict = {}
        self.last_epoch = 0

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t0

    def notice(self, message: str) -> None:
        self.log(message)
        self.sink.emit("notice", message=message)

    # -- set-up ---------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg.validate()
        resume = None
        if self.resume_from is not None:
            resume = load_detector_file(self.resume_from, with_optimizer=True)
            if "train_state" not in resume.meta or resume.optimizer_state is None:
                raise ConfigError(f"{self.resume_from}: has no training state to resume from "
                                  f"(use the run's {LAST_MODEL})")
        device = select_device(cfg.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = device
        areas = load_areas(cfg)
        train, val, note = split_areas(areas, cfg.val_fraction, cfg.seed)
        f = cfg.work_downsample
        cache: dict = {}
        self.train = [prepare(a, f, cfg.diameter_px, cfg.partial_labels, cfg.ignore_beyond,
                              cache, cfg.unstained_is_background) for a in train]
        self.val_areas = self.val = val
        self.n_train_cells = int(sum(len(a.points) for a in train))
        self.n_val_cells = int(sum(len(a.points) for a in val))
        run_dir = Path(cfg.out_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        self.sink.open_run_dir(run_dir)
        cfg.save(run_dir / CONFIG_FILE)
        (run_dir / SPLIT_FILE).write_text(json.dumps(
            {"train": [a.name for a in train], "val": [a.name for a in val]}, indent=1) + "\n")
        if note:
            self.notice(note)
        self.radius = cfg.match_radius_px or 0.3 * cfg.diameter_px
        torch.manual_seed(cfg.seed)
        self.model = net.create(cfg.width, cfg.depth).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        self.total_steps = cfg.epochs * cfg.steps_per_epoch
        self.start_epoch, self.global_step = 1, 0
        if resume is not None:
            self.model.load_state_dict(resume.state_dict)
            from trainer.engine.step import load_optimizer_state

            load_optimizer_state(self.opt, resume.optimizer_state or {})
            ts = resume.meta["train_state"]
            self.start_epoch = int(ts["epoch"]) + (1 if ts.get("epoch_complete", True) else 0)
            self.global_step = (self.start_epoch - 1) * cfg.steps_per_epoch
            self.elapsed_before = float(ts.get("elapsed_s", 0.0))
            self.best_f1 = float(ts.get("best_f1", -1.0))
            self.best_epoch = int(ts.get("best_epoch", 0))
            self.best_metrics = dict(resume.meta.get("best_metrics") or {})
            self.last_epoch = self.start_epoch - 1
            if not ts.get("epoch_complete", True):
                self.notice(f"resuming: epoch {ts['epoch']} was interrupted and restarts")
            self._truncate_metrics(self.start_epoch - 1)
        self.n_params = net.count_parameters(self.model)

    def _truncate_metrics(self, epoch: int) -> None:
        assert self.run_dir is not None
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= epoch]
        self._write_metrics(rows, "w")

    def _write_metrics(self, rows: list[dict], mode: str = "a") -> None:
        assert self.run_dir is not None
        path = self.run_dir / METRICS_FILE
        new = mode == "w" or not path.exists() or path.stat().st_size == 0
        with open(path, mode, newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(rows)

    # -- model files ----------------------------------------------------------------------
    def _meta(self, metrics: dict, threshold: float, train_state: dict | None) -> dict:
        cfg = self.cfg
        meta = {
            "arch_kwargs": {"width": cfg.width, "depth": cfg.depth},
            "detector": detector_settings(cfg, threshold),
            "config": cfg.to_dict(), "metrics": metrics, "best_metrics": self.best_metrics,
            "n_params": self.n_params,
            "data": {"n_train": self.n_train_cells, "n_val": self.n_val_cells,
                     "n_train_areas": len(self.train), "n_val_areas": len(self.val),
                     "partial_labels": cfg.partial_labels, "points": cfg.points,
                     "regions": cfg.regions, "epochs_run": metrics.get("epoch")},
        }
        if train_state is not None:
            meta["train_state"] = train_state
        return meta

    def save(self, kind: str, metrics: dict, threshold: float, train_state: dict | None
             ) -> Path:
        assert self.run_dir is not None
        path = self.run_dir / (LAST_MODEL if kind == "last" else BEST_MODEL)
        save_detector_file(path, state_dict=self.model.state_dict(),
                           meta=self._meta(metrics, threshold, train_state),
                           optimizer_state=self.opt.state_dict() if kind == "last" else None)
        self.sink.emit("checkpoint", kind=kind, path=str(path), epoch=metrics.get("epoch"),
                       val_f1=metrics.get("val_f1"))
        return path

    def train_state(self, epoch: int, complete: bool) -> dict:
        return {"epoch": epoch, "epoch_complete": complete, "global_step": self.global_step,
                "elapsed_s": self.elapsed(), "best_f1": self.best_f1,
                "best_epoch": self.best_epoch}

    # -- validation -----------------------------------------------------------------------
    def validate(self) -> tuple[float, dict]:
        from trainer.detect.data import points_inside, read_rgb

        self.model.eval()
        detector = Detector(self.model, {"detector": detector_settings(self.cfg, LOW_THRESHOLD),
                                         "arch_kwargs": {"depth": self.cfg.depth}}, self.device,
                            backend="torch")  # the weights change every epoch: no export
        found, truths = [], []
        for area in self.val_areas:
            rgb = read_rgb(area.image)
            x0 = y0 = 0
            if area.polygon is not None:  # only the region's box is detected on
                x0, y0 = (max(0, int(v)) for v in area.polygon.min(axis=0))
                x1, y1 = (int(math.ceil(v)) + 1 for v in area.polygon.max(axis=0))
                rgb = rgb[y0:y1, x0:x1]
            got = detector.detect_array(rgb)
            xy = got.xy() + [x0, y0]
            inside = points_inside(xy, area.polygon) if area.polygon is not None \
                else np.ones(len(xy), bool)
            if self.cfg.partial_labels:
                inside &= near_a_label(xy, area.points,
                                       self.cfg.ignore_beyond * self.cfg.diameter_px)
            found.append((xy[inside], got.score[inside]))
            truths.append(area.points)
        self.model.train()
        threshold, sc = best_threshold(found, truths, self.radius)
        sc["n_val_detections"] = sc["tp"] + sc["fp"]
        return threshold, sc

    # -- the loop -------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Cosine decay to 5 % over the run, after a short linear warm-up."""
        warm = min(50, self.total_steps // 10)
        if step < warm:
            return self.cfg.lr * (step + 1) / warm
        t = (step - warm) / max(1, self.total_steps - warm)
        return self.cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    def loop(self) -> RunResult:
        cfg = self.cfg
        self.sink.emit(
            "started", run_dir=str(self.run_dir), config=cfg.to_dict(), model=net.ARCH,
            task="detection", device=str(self.device), device_name=device_name(self.device),
            params=self.n_params, n_train=self.n_train_cells, n_val=self.n_val_cells,
            n_train_areas=len(self.train), n_val_areas=len(self.val),
            batch_size=cfg.batch_size, steps_per_epoch=cfg.steps_per_epoch, epochs=cfg.epochs,
            start_epoch=self.start_epoch, lr=cfg.lr, downsample=cfg.work_downsample,
            resumed_from=str(self.resume_from) if self.resume_from else None, classes=["cell"])
        if self.start_epoch > cfg.epochs:
            self.notice(f"the run already trained {cfg.epochs} epochs; nothing to do")
            return self.finish(StopReason.FINISHED, cfg.epochs, "nothing left to train")
        self.model.train()
        steps, batch = cfg.steps_per_epoch, cfg.batch_size
        epoch_times: list[float] = []
        for epoch in range(self.start_epoch, cfg.epochs + 1):
            sampler = CropSampler(self.train, cfg.crop_px, seed=cfg.seed * 100_003 + epoch,
                                  augment=cfg.augment, stain_jitter=cfg.stain_jitter)
            t_epoch = last_beat = time.monotonic()
            loss_sum = 0.0
            step = 0
            while step < steps:
                for g in self.opt.param_groups:
                    g["lr"] = self.lr_at(self.global_step)
                imgs, tgts, poss, wts = (torch.from_numpy(a).to(self.device)
                                         for a in sampler.batch(batch))
                loss = focal_loss(self.model(imgs), tgts, poss, wts)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                loss_sum += float(loss.detach())
                step += 1
                self.global_step += 1
                if not math.isfinite(loss_sum):
                    return self.finish(StopReason.NON_FINITE_LOSS, epoch - 1,
                                       f"the training loss became {loss_sum} in epoch {epoch}; "
                                       "try a lower learning rate")
                if self.stop.is_set() and step < steps:
                    self.save("last", {"epoch": epoch - 1, "partial_epoch": epoch},
                              self._last_threshold(), self.train_state(epoch, False))
                    return self.finish(StopReason.STOP_REQUEST, epoch - 1,
                                       f"stopped at step {step}/{steps} of epoch {epoch} "
                                       f"({self.stop_source()})")
                now = time.monotonic()
                if now - last_beat >= cfg.heartbeat_s and step < steps:
                    last_beat = now
                    rate = step * batch / max(now - t_epoch, 1e-9)
                    per_epoch = np.mean(epoch_times) if epoch_times else steps * batch / rate
                    self.sink.emit(
                        "batch", epoch=epoch, epochs=cfg.epochs, step=step, steps=steps,
                        train_loss=loss_sum / step, samples_per_s=round(rate, 1),
                        elapsed_s=round(self.elapsed(), 3),
                        eta_s=round((steps - step) * batch / rate
                                    + per_epoch * (cfg.epochs - epoch), 1))
            train_s = time.monotonic() - t_epoch
            threshold, sc = self.validate()
            epoch_s = time.monotonic() - t_epoch
            epoch_times.append(epoch_s)
            improved = sc["f1"] > self.best_f1
            metrics = {"epoch": epoch, "train_loss": loss_sum / steps,
                       "val_precision": sc["precision"], "val_recall": sc["recall"],
                       "val_f1": sc["f1"], "threshold": threshold,
                       "n_val_detections": sc["n_val_detections"]}
            if improved:
                self.best_f1, self.best_epoch, self.best_metrics = sc["f1"], epoch, metrics
            self.last_epoch = epoch
            self._threshold = threshold
            rate = steps * batch / max(train_s, 1e-9)
            self.sink.emit("epoch", epochs=cfg.epochs, lr=self.lr_at(self.global_step - 1),
                           samples_per_s=round(rate, 1), epoch_s=round(epoch_s, 3),
                           elapsed_s=round(self.elapsed(), 3),
                           eta_s=round(float(np.mean(epoch_times[-5:])) * (cfg.epochs - epoch),
                                       1),
                           best_val_f1=self.best_f1, best_epoch=self.best_epoch,
                           improved=improved, **metrics)
            self._write_metrics([{**metrics, "lr": self.lr_at(self.global_step - 1),
                                  "samples_per_s": f"{rate:.1f}", "epoch_s": f"{epoch_s:.2f}",
                                  "elapsed_s": f"{self.elapsed():.2f}"}])
            self.save("last", metrics, threshold, self.train_state(epoch, True))
            if improved:
                self.save("best", metrics, threshold, None)
            if self.stop.is_set():
                return self.finish(StopReason.STOP_REQUEST, epoch,
                                   f"stopped after epoch {epoch} ({self.stop_source()})")
        return self.finish(StopReason.FINISHED, cfg.epochs)

    def _last_threshold(self) -> float:
        return getattr(self, "_threshold", 0.5)

    def stop_source(self) -> str:
        return getattr(self.stop_control, "source", None) or "stop request"

    def finish(self, reason: StopReason, epoch: int, detail: str = "") -> RunResult:
        self.sink.emit("stopped", reason=reason, epoch=epoch, detail=detail)
        assert self.run_dir is not None
        best, last = self.run_dir / BEST_MODEL, self.run_dir / LAST_MODEL
        model_path = best if best.exists() else (last if last.exists() else None)
        self.sink.emit(
            "finished", reason=reason, model_path=str(model_path) if model_path else None,
            last_model_path=str(last) if last.exists() else None, run_dir=str(self.run_dir),
            best_epoch=self.best_epoch or None, epochs_run=self.last_epoch,
            elapsed_s=round(self.elapsed(), 3), metrics=self.best_metrics, classes=["cell"],
            task="detection")
        status = "stopped" if reason == StopReason.STOP_REQUEST else "finished"
        return RunResult(status, reason, self.run_dir, best if best.exists() else None,
                         last if last.exists() else None, dict(self.best_metrics))


def run_detector_training(cfg: DetectorRunConfig, *, sink: EventSink | None = None, stop=None,
                          resume_from: str | Path | None = None,
                          log: Callable[[str], None] = stderr_log) -> RunResult:
    """Train one detector run; never raises for a failed run (an ``error`` event and a result
    with ``status == "error"``). ``stop``: a ``threading.Event`` or a ``StopControl``."""
    sink = sink if sink is not None else EventSink()
    stop = stop if stop is not None else threading.Event()
    run = _Run(cfg, sink, stop, Path(resume_from) if resume_from else None, log)
    try:
        run.setup()
        result = run.loop()
    except KeyboardInterrupt:
        result = _error(run, ErrorKind.INTERNAL, "interrupted (Ctrl-C twice)")
    except Exception as exc:  # reported as an event: the reader must always learn the end
        kind, message = classify_exception(exc)
        if kind == ErrorKind.INTERNAL:
            import traceback

            traceback.print_exc()
        result = _error(run, kind, message)
    sink.close()
    return result


def _error(run: _Run, kind: ErrorKind, message: str) -> RunResult:
    run.sink.emit("error", kind=kind, message=message)
    return RunResult("error", None, run.run_dir, error_kind=kind, error=message)

