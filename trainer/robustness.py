"""Blur robustness, as the study defines it.

Gaussian blur with PIL's ``ImageFilter.GaussianBlur`` (its ``radius`` is the standard
deviation) at sigma in {0.1, 0.2, 0.4, 0.8, 1.6}, in two modes:

- **post-resize**: sigma applied to the 40x40 patch;
- **pre-resize**: sigma_pre = sigma x S0 / 40 applied to the source crop (S0 x S0, the field of
  view before resizing), then resized to 40x40 with the patch set's own resize
  (``trainer.formats.patchset.resize_to_patch``). A patch set without source crops has no
  pre-resize rows, and the report says so (nothing is faked from the 40x40 patches).

The blur itself (``blur_for_mode``...) is :mod:`trainer.formats.blur`, which the desktop app's
blur preview uses too; this module measures a predictor under it.

Whitening is applied after blurring, exactly as for clean inputs (the predictor does it).
The report: accuracy, macro-F1 and their change from clean per sigma and mode, and per mode the
**drop slope**: the least-squares slope of accuracy against log2(1 + sigma) over the clean
point (sigma 0) and the five blurred ones (negative: accuracy lost per doubling of 1 + sigma).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.formats.blur import SIGMAS


def drop_slope(sigmas, accuracies) -> float:
    """Least-squares slope of accuracy against log2(1 + sigma)."""
    x = np.log2(1.0 + np.asarray(sigmas, dtype=np.float64))
    y = np.asarray(accuracies, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    slope, _ = np.polyfit(x, y, 1)
    return float(slope)


@dataclass
class RobustnessReport:
    classes: list[str]
    clean_accuracy: float
    clean_macro_f1: float
    rows: list[dict] = field(default_factory=list)  # mode, sigma, accuracy, macro_f1, deltas
    slopes: dict[str, float] = field(default_factory=dict)  # mode -> drop slope
    notes: list[str] = field(default_factory=list)
    n: int = 0

    def to_dict(self) -> dict:
        return {"n": self.n, "classes": self.classes, "clean_accuracy": self.clean_accuracy,
                "clean_macro_f1": self.clean_macro_f1, "rows": self.rows,
                "drop_slopes": self.slopes, "notes": self.notes}

    def format_table(self) -> str:
        """A Markdown table (macro-F1, its change from clean, accuracy) and the slopes."""
        lines = ["| mode | sigma | macro-F1 | Δ macro-F1 | accuracy | Δ accuracy |",
                 "|---|---:|---:|---:|---:|---:|",
                 f"| clean | 0 | {self.clean_macro_f1:.4f} | 0 | {self.clean_accuracy:.4f} | 0 |"]
        for r in self.rows:
            lines.append(f"| {r['mode']} | {r['sigma']:g} | {r['macro_f1']:.4f} | "
                         f"{r['delta_macro_f1']:+.4f} | {r['accuracy']:.4f} | "
                         f"{r['delta_accuracy']:+.4f} |")
        lines.append("")
        for mode, slope in self.slopes.items():
            lines.append(f"drop slope ({mode}-resize): {slope:+.4f} accuracy per unit of "
                         "log2(1 + sigma)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def write(self, out_dir: str | os.PathLike, prefix: str = "robustness") -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / f"{prefix}.json", "csv": out / f"{prefix}.csv",
                 "md": out / f"{prefix}.md"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        with open(paths["csv"], "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["mode", "sigma", "accuracy", "macro_f1", "delta_accuracy",
                        "delta_macro_f1"])
            w.writerow(["clean", 0, f"{self.clean_accuracy:.6f}", f"{self.clean_macro_f1:.6f}",
                        0, 0])
            for r in self.rows:
                w.writerow([r["mode"], r["sigma"], f"{r['accuracy']:.6f}",
                            f"{r['macro_f1']:.6f}", f"{r['delta_accuracy']:.6f}",
                            f"{r['delta_macro_f1']:.6f}"])
        paths["md"].write_text(self.format_table() + "\n")
        return paths


def blur_robustness(
    predictor,
    patches_u8: np.ndarray,
    labels: np.ndarray,
    *,
    source_crops: np.ndarray | None = None,
    sigmas=SIGMAS,
    batch_size: int = 1024,
    tta: bool = False,
) -> RobustnessReport:
    """Predict clean and blurred versions of ``patches_u8`` (labels in the predictor's class
    indices) and tabulate the metrics (see the module docstring)."""
    from trainer.metrics import classification_metrics

    k = len(predictor.classes)
    labels = np.asarray(labels, dtype=np.int64)

    def score(**kw) -> tuple[float, float]:
        probs = predictor.predict(patches_u8, batch_size=batch_size, tta=tta, **kw).probs
        m = classification_metrics(labels, probs.argmax(axis=1), k)
        return m.accuracy, m.macro_f1

    acc0, f10 = score()
    report = RobustnessReport(list(predictor.classes), acc0, f10, n=len(labels))
    modes = ["post"]
    if source_crops is not None:
        modes.append("pre")
    else:
        report.notes.append("the patch set has no source crops: pre-resize blur was not "
                            "measured (rebuild the patch set keeping source crops)")
    for mode in modes:
        accs = [acc0]
        for sigma in sigmas:
            acc, f1 = score(blur_sigma=float(sigma), blur_mode=mode, source_crops=source_crops)
            accs.append(acc)
            report.rows.append({"mode": mode, "sigma": float(sigma), "accuracy": acc,
                                "macro_f1": f1, "delta_accuracy": acc - acc0,
                                "delta_macro_f1": f1 - f10})
        report.slopes[mode] = drop_slope([0.0, *sigmas], accs)
    if source_crops is not None and source_crops.shape[1] == 40:
        report.notes.append("the source crops are 40x40 (field of view 40 px), so pre-resize "
                            "blur equals post-resize blur")
    return report
