"""Settings that fit the machine, how long a run will take, and the last settings of a project.

The study's defaults (100 epochs at batch 512) are GPU settings: on a laptop's CPU they mean a
run of many hours. Where the trainer finds no GPU the form proposes a small model and few
epochs instead (:data:`CPU_MODEL`, :data:`CPU_EPOCHS`, :data:`CPU_BATCH`; "Study defaults"
brings the study's values back), and before Start it says how long the run would take: the
training step of the chosen model is timed on this machine by the trainer
(``trainer benchmark MODEL --train --json``, a few seconds in its own process) and
:func:`estimate_seconds` scales it to the run's epochs and patches.

The settings of the last run started are kept beside the project's runs
(``<project>.runs/last_settings.json``) and fill the next New training run dialog.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cellviewer.core.training.devices import DeviceStatus
from cellviewer.core.training.runs import runs_root

CPU_MODEL = "cnn"  # the study's small CNN: 2 M parameters, fast on a CPU
CPU_EPOCHS = 15
CPU_BATCH = 256
LAST_SETTINGS = "last_settings.json"
#: what is remembered: the form's attributes (names as in TrainingForm)
REMEMBERED = ("model", "mode", "epochs", "lr", "weight_decay", "batch_size", "device", "seed",
              "flag_limit", "val_fraction", "split_column")
#: timing a model: few runs, small batches (the answer is a rate, seconds to get)
TIMING_TIMEOUT_S = 180.0


def has_gpu(status: DeviceStatus | None) -> bool:
    """The trainer found a CUDA GPU or Apple MPS (None: not known yet, counted as no)."""
    return status is not None and (bool(status.cuda) or status.mps)


@dataclass(frozen=True)
class Timing:
    """What the trainer measured on this machine for one model, device and batch size."""

    train_samples_per_s: float
    infer_samples_per_s: float
    setup_s: float = 0.0
    device: str = ""

    @classmethod
    def from_benchmark(cls, data: dict) -> Timing:
        """From ``trainer benchmark … --train --json``; ValueError when a rate is missing."""
        try:
            train = float(data["train"]["samples_per_s"])
            infer = float(data["inference"].get("large_batch_samples_per_s") or train * 3)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the trainer's timing has no training rate ({exc})") from None
        if train <= 0:
            raise ValueError("the trainer's timing gave no training rate")
        return cls(train, infer, float(data["train"].get("setup_s", 0.0)),
                   str(data["train"].get("device", "")))


def benchmark_args(model: str, device: str, batch_size: int, num_classes: int) -> list[str]:
    """The trainer command that times ``model``'s training step (a few seconds)."""
    return ["benchmark", model, "--num-classes", str(max(2, int(num_classes))),
            "--device", device, "--runs", "20", "--large-batch", "64", "--train",
            "--train-batch-size", str(int(batch_size)), "--json"]


def time_model(model: str, device: str, batch_size: int, num_classes: int) -> Timing:
    """Ask the trainer to time the model here. Blocks for seconds: call it from a worker."""
    from cellviewer.core.training.devices import ask_trainer

    answer = ask_trainer(benchmark_args(model, device, batch_size, num_classes),
                         timeout=TIMING_TIMEOUT_S)
    if isinstance(answer, dict) and answer.get("event") == "error":
        raise ValueError(str(answer.get("message", "the trainer could not time the model")))
    return Timing.from_benchmark(answer)


def estimate_seconds(epochs: int, train_patches: int, val_patches: int,
                     timing: Timing) -> float:
    """A run's duration: each epoch trains on every (augmented) training patch and predicts
    every validation patch, at the rates measured; plus the set-up once."""
    per_epoch = train_patches / timing.train_samples_per_s + \
        val_patches / max(timing.infer_samples_per_s, 1e-9)
    return timing.setup_s + max(0, int(epochs)) * per_epoch


def last_settings_path(project_path: str | os.PathLike) -> Path:
    return runs_root(project_path) / LAST_SETTINGS


def save_last(project_path: str | os.PathLike, values: dict) -> Path:
    """Keep a run's settings for the project's next run (best effort: a read-only folder
    raises OSError, which the caller may ignore)."""
    path = last_settings_path(project_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {k: values[k] for k in REMEMBERED if k in values}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(kept, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_last(project_path: str | os.PathLike) -> dict:
    """The last run's settings of the project ({} when none, or the file is unreadable)."""
    path = last_settings_path(project_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: data[k] for k in REMEMBERED if k in data} if isinstance(data, dict) else {}
