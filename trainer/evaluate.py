"""Evaluating a model file on labelled cells: accuracy, macro precision/recall/F1, per-class
metrics and the confusion matrix (counts and normalised by true class), written as JSON and
CSV.

Which cells: by default the validation cells of the model's own run (``split.npz`` beside the
model file), or every labelled cell of any patch set. Classes are matched by name; cells of a
class the model does not have are left out and counted.

Files written in the output folder (the run folder by default), ``evaluation`` by default as
the prefix: ``<prefix>.json`` (everything), ``<prefix>_per_class.csv``
(``class,precision,recall,f1,support``), ``<prefix>_confusion.csv`` (rows: true class,
columns: predicted; normalised by row) and ``<prefix>_confusion_counts.csv``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.formats.patchset import PatchSet, PatchSetError, load_patchset
from trainer.metrics import ClassificationMetrics, classification_metrics


@dataclass
class EvalData:
    """Labelled cells to evaluate on, in the model's class indices."""

    patchset: PatchSet
    idx: np.ndarray  # rows of the patch set
    y: np.ndarray  # model class index per row of idx
    description: str
    left_out: int = 0  # labelled cells of classes the model does not have

    @property
    def patches(self) -> np.ndarray:
        return np.ascontiguousarray(self.patchset.patches[self.idx])

    @property
    def source_crops(self) -> np.ndarray | None:
        """The crops before resizing, where the patch set kept them. A patch set of a 40 px
        field of view needs none: its patches are the crops, unresized (so the pre-resize
        blur is the post-resize blur, and the robustness report says so)."""
        crops = self.patchset.source_crops
        if crops is None and float(getattr(self.patchset, "fov_px", 0) or 0) == 40.0:
            return self.patches
        return None if crops is None else np.ascontiguousarray(crops[self.idx])


def _map_labels(ps: PatchSet, model_classes: list[str], rows: np.ndarray | None):
    by_name = {c: i for i, c in enumerate(model_classes)}
    lut = np.array([by_name.get(c, -1) for c in ps.classes] + [-1], dtype=np.int64)
    labels = np.asarray(ps.labels, dtype=np.int64)
    if rows is None:
        rows = np.arange(len(labels), dtype=np.int64)
    mapped = lut[labels[rows]]
    keep = mapped >= 0
    left_out = int(((labels[rows] >= 0) & ~keep).sum())
    return rows[keep], mapped[keep], left_out


def select_eval_data(model_path: str | os.PathLike, model_classes: list[str],
                     patchset: str | os.PathLike | None = None) -> EvalData:
    """The cells to evaluate on (see the module docstring)."""
    if patchset is not None:
        ps = load_patchset(patchset)
        idx, y, left_out = _map_labels(ps, model_classes, None)
        description = f"all labelled cells of {ps.path}"
    else:
        from trainer.engine.dataset import SPLIT_FILE, load_split

        run_dir = Path(model_path).parent
        if not (run_dir / SPLIT_FILE).is_file():
            raise PatchSetError(
                f"{run_dir}: no {SPLIT_FILE} beside the model file, so its validation cells "
                "are unknown; name a labelled patch set to evaluate on (--patchset)")
        split = load_split(run_dir)
        ps = load_patchset(split["val_patchset"])
        idx, y, left_out = _map_labels(ps, model_classes, split["val_idx"])
        description = f"the run's validation cells ({ps.path})"
    if len(idx) == 0:
        raise PatchSetError(f"{ps.path}: no labelled cells of the model's classes "
                            f"({', '.join(model_classes)})")
    return EvalData(ps, idx, y, description, left_out)


def write_report(out_dir: str | os.PathLike, metrics: ClassificationMetrics,
                 classes: list[str], info: dict | None = None,
                 prefix: str = "evaluation") -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / f"{prefix}.json",
        "per_class": out / f"{prefix}_per_class.csv",
        "confusion": out / f"{prefix}_confusion.csv",
        "confusion_counts": out / f"{prefix}_confusion_counts.csv",
    }
    report = {**(info or {}), **metrics.to_dict(classes)}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    with open(paths["per_class"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", "precision", "recall", "f1", "support"])
        for i, name in enumerate(classes):
            w.writerow([name, f"{metrics.precision[i]:.6f}", f"{metrics.recall[i]:.6f}",
                        f"{metrics.f1[i]:.6f}", int(metrics.support[i])])
        w.writerow(["(macro)", f"{metrics.macro_precision:.6f}", f"{metrics.macro_recall:.6f}",
                    f"{metrics.macro_f1:.6f}", metrics.n])
    for key, matrix, fmt in (("confusion", metrics.confusion_normalized, "{:.6f}"),
                             ("confusion_counts", metrics.confusion, "{}")):
        with open(paths[key], "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["true \\ predicted", *classes])
            for i, name in enumerate(classes):
                w.writerow([name, *(fmt.format(v) for v in matrix[i])])
    return paths


def format_metrics(metrics: ClassificationMetrics, classes: list[str]) -> str:
    """A plain-text summary: overall metrics, per-class table, normalised confusion matrix."""
    width = max(len(c) for c in classes + ["(macro)"])
    lines = [f"n = {metrics.n}   accuracy {metrics.accuracy:.4f}   macro-F1 "
             f"{metrics.macro_f1:.4f}   macro precision {metrics.macro_precision:.4f}   "
             f"macro recall {metrics.macro_recall:.4f}", "",
             f"{'class':<{width}}  precision  recall     f1  support"]
    for i, c in enumerate(classes):
        lines.append(f"{c:<{width}}  {metrics.precision[i]:9.4f}  {metrics.recall[i]:6.4f}  "
                     f"{metrics.f1[i]:5.4f}  {int(metrics.support[i]):7d}")
    lines += ["", "confusion (rows: true, columns: predicted, normalised by row)",
              " " * width + "  " + "  ".join(f"{c[:8]:>8}" for c in classes)]
    cm = metrics.confusion_normalized
    for i, c in enumerate(classes):
        lines.append(f"{c:<{width}}  " + "  ".join(f"{v:8.3f}" for v in cm[i]))
    return "\n".join(lines)


def evaluate_model(
    model_path: str | os.PathLike,
    patchset: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    batch_size: int = 1024,
    out_dir: str | os.PathLike | None = None,
    prefix: str = "evaluation",
    tta: bool = False,
) -> tuple[ClassificationMetrics, list[str], dict[str, Path]]:
    """Evaluate a model file and write the report (into ``out_dir``, default the model's
    folder). Returns the metrics, the class names and the written paths. ``tta``: predict
    with test-time augmentation (the mean over the 8 dihedral orientations)."""
    from trainer.predict import Predictor

    predictor = Predictor.load(model_path, device=device)
    data = select_eval_data(model_path, predictor.classes, patchset)
    result = predictor.predict(data.patches, batch_size=batch_size, tta=tta)
    metrics = classification_metrics(data.y, result.probs.argmax(axis=1), len(predictor.classes))
    info = {"model": str(model_path), "data": data.description, "left_out": data.left_out,
            "tta": tta}
    paths = write_report(out_dir or Path(model_path).parent, metrics, predictor.classes, info,
                         prefix)
    return metrics, predictor.classes, paths
