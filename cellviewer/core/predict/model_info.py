"""What the app knows of a model file and of the model chosen for a project: its metadata (read
without loading weights or importing torch), its description for people, and the mapping of its
classes to the project's. Qt-free, so a script describes and maps a model as the app does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core.predict.job import ClassMatch


@dataclass
class ModelChoice:
    """A model chosen for this project, with the project class each of its classes means (the
    store matched them by name when the model was registered)."""

    path: Path
    name: str
    meta: dict
    model_id: int | None = None  # the project's model id
    match: ClassMatch | None = None
    class_ids: list[int | None] = field(default_factory=list)  # per model class

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", []))

    @property
    def arch(self) -> str:
        return str(self.meta.get("arch", "?"))

    def class_lut(self) -> np.ndarray:
        """Model class index -> project class id (-1 where the class has no match)."""
        return np.array([-1 if c is None else int(c) for c in self.class_ids], dtype=np.int64)

    def predicted_class_ids(self, probs: np.ndarray) -> np.ndarray:
        """The project class id of each row's most probable model class (-1: no match)."""
        probs = np.asarray(probs)
        if probs.size == 0 or not len(self.class_ids):
            return np.full(len(probs), -1, dtype=np.int64)
        return self.class_lut()[np.argmax(probs, axis=1)]


def read_model_info(path: str | Path) -> dict:
    """The model file's metadata (no weights are read). A model file records the data that
    trained it under ``"data"``; for an older file without it that still lies in its run
    folder, what the run's ``started`` event says about the data (``n_train``, ``n_val``,
    excluded classes) is added under ``"run"``. Reads the file's header (no torch): call it from
    a worker thread all the same, a model file may sit on a slow disk."""
    from trainer.formats.model_header import read_model_header as read_model_meta

    meta = dict(read_model_meta(path))
    events = Path(path).with_name("events.jsonl")
    if not _data_of(meta) and events.is_file():
        from trainer.formats.protocol import parse_line

        with open(events, encoding="utf-8") as fh:
            for line in fh:
                event = parse_line(line)
                if event and event.get("event") == "started":
                    meta["run"] = {k: event[k] for k in (
                        "n_train", "n_train_augmented", "n_val", "excluded_classes",
                        "device_name") if k in event}
                    break
    return meta


def _data_of(meta: dict) -> dict:
    """The model file's own record of its training data (``{}`` for files older than it)."""
    data = meta.get("data")
    return data if isinstance(data, dict) and data.get("n_train") is not None else {}


def describe_meta(meta: dict) -> dict[str, str]:
    """What the panel shows of a model: architecture, classes, training data, validation.
    The training data comes from the model file's ``data`` record, else (older files) from
    the run's ``started`` event that :func:`read_model_info` put under ``"run"``."""
    cfg = dict(meta.get("config") or {})
    data = _data_of(meta)
    run = data or meta.get("run") or {}
    if data:
        cfg["flag_limit"] = data.get("flag_limit")
        if data.get("epochs_run"):
            cfg["epochs"] = data["epochs_run"]
    metrics = meta.get("metrics") or meta.get("final") or {}
    out = {"Architecture": str(meta.get("arch", "?"))}
    params = meta.get("n_params") or meta.get("num_params")
    if params:
        out["Architecture"] += f" ({int(params) / 1e6:.2f} M parameters)"
    classes = list(meta.get("classes", []))
    out["Classes"] = f"{len(classes)}: " + ", ".join(classes)
    sizes = []
    if run.get("n_train") is not None:
        sizes.append(f"{int(run['n_train']):,} train")
        augmented = run.get("n_train_augmented")
        if augmented and augmented != run["n_train"]:
            sizes[-1] += f" ({int(augmented):,} augmented)"
    if run.get("n_val") is not None:
        sizes.append(f"{int(run['n_val']):,} validation")
    if cfg.get("flag_limit"):
        sizes.append(f"FlagLimit {cfg['flag_limit']}")
    if cfg.get("epochs"):
        sizes.append(f"{cfg['epochs']} epochs")
    if run.get("excluded_classes"):
        sizes.append("excluded: " + ", ".join(run["excluded_classes"]))
    out["Training data"] = ", ".join(sizes) if sizes else "not recorded in the model file"
    shown = []
    for key, label in (("val_acc", "accuracy"), ("macro_f1", "macro-F1"),
                       ("balanced_accuracy", "balanced accuracy"), ("val_loss", "loss"),
                       ("epoch", "epoch")):
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        shown.append(f"{label} {value:.3f}" if isinstance(value, float) else f"{label} {value}")
    out["Validation"] = ", ".join(shown) if shown else "not recorded"
    fov = meta.get("fov_px")
    if fov:
        out["Field of view"] = f"{float(fov):g} px"
    return out


def default_model_name(path: Path) -> str:
    """A model's name from its file: a run's ``best``/``last`` model is named after its run
    folder (``crc-cnn/best``), any other file after itself."""
    if path.stem in ("best", "last") and path.parent.name:
        return f"{path.parent.name}/{path.stem}"
    return path.stem
