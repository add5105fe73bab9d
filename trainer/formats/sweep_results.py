"""A sweep's results as rows and summaries: read from run folders, written as ``results.csv``,
grouped per model and FlagLimit with the mean and spread over seeds.

Standard library and NumPy only: the report (:mod:`trainer.sweep.report`) and the desktop
app's Compare runs window read results with the same code, from a sweep folder or from any run
folders (a project's runs: their ``config.json`` says the model, FlagLimit and seed, their
``evaluation.json`` the validation metrics; what was not measured stays empty).

Metrics per run (``val_`` on the run's validation cells, ``test_`` on the sweep's test patch
set): accuracy, macro precision/recall/F1 over the run's classes, ``macro_f1_common`` over the
classes present in every run of the set (FlagMin drops small classes at high FlagLimits, so
the class set changes along a scaling curve; this one does not), weighted F1 (per-class F1
weighted by support) and the per-class F1. Blur: the change of macro-F1 per sigma, pre- and
post-resize, and the drop slopes. Cost: parameters, MB, batch-1 latency, GFLOPs.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.formats.protocol import parse_line
from trainer.formats.sweep import ALL, COST_FILE, RESULTS_FILE, RUN_RECORD, RUNS_DIR, TEST_PREFIX

BASE_COLUMNS = ["run_id", "model", "arch", "mode", "flag_limit", "covers", "seed", "complete",
                "n_train", "n_classes", "classes", "epochs_run", "train_s", "device"]
METRICS = ["accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_f1_common",
           "weighted_f1"]
COST_COLUMNS = ["params", "size_mb", "latency_b1_ms", "gflops", "cost_device"]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def limit_label(value: Any) -> str:
    """A FlagLimit as the results write it: the number, or "all"."""
    if value is None or value == "" or str(value).lower() == ALL:
        return ALL
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def limit_order(label: str) -> tuple[int, int]:
    """Sort key: numeric limits ascending, "all" last."""
    return (1, 0) if label == ALL else (0, int(label)) if label.isdigit() else (2, 0)


def _eval_metrics(ev: dict, prefix: str, row: dict) -> dict[str, float]:
    """Fill ``row`` with an evaluation.json's metrics; returns the per-class F1."""
    per_class = {str(p.get("class")): p for p in ev.get("per_class", []) if isinstance(p, dict)}
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
        row[f"{prefix}_{key}"] = _number(ev.get(key))
    support = sum(float(p.get("support") or 0) for p in per_class.values())
    if per_class and support > 0:
        row[f"{prefix}_weighted_f1"] = sum(float(p.get("f1") or 0) * float(p.get("support") or 0)
                                           for p in per_class.values()) / support
    return {c: float(p.get("f1") or 0.0) for c, p in per_class.items()
            if float(p.get("support") or 0) > 0}


def _events(run_dir: Path) -> tuple[dict, dict]:
    """The last ``started`` and ``finished`` events of the run (empty when absent)."""
    started: dict = {}
    finished: dict = {}
    try:
        with open(run_dir / "events.jsonl", encoding="utf-8") as fh:
            for line in fh:
                e = parse_line(line)
                if not e:
                    continue
                if e.get("event") == "started":
                    started, finished = e, {}
                elif e.get("event") == "finished":
                    finished = e
    except OSError:
        pass
    return started, finished


def read_run(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """One row of results from a run folder; None when the folder is not a run (no
    ``config.json``). Per-class F1 are under ``_val_f1`` / ``_test_f1`` (dicts), blur under
    ``blur_<mode>_d_macro_f1_<sigma>`` and ``drop_slope_<mode>``."""
    run_dir = Path(run_dir)
    cfg = _read_json(run_dir / "config.json")
    record = _read_json(run_dir / RUN_RECORD)
    if not cfg and not record:
        return None
    started, finished = _events(run_dir)
    mode = record.get("mode", cfg.get("mode"))
    arch = record.get("arch") or cfg.get("model") or "?"
    row: dict[str, Any] = {
        "run_id": record.get("run_id") or run_dir.name,
        "model": record.get("model") or (f"{arch}-{mode}" if mode else arch),
        "arch": arch, "mode": mode or "",
        "flag_limit": limit_label(record.get("flag_limit", cfg.get("flag_limit"))),
        "covers": ";".join(record.get("covers") or []),
        "seed": record.get("seed", cfg.get("seed")),
        "complete": bool(record.get("complete")),
        "n_train": started.get("n_train"),
        "epochs_run": finished.get("epochs_run"),
        "train_s": _number(finished.get("elapsed_s")),
        "device": started.get("device_name") or started.get("device") or "",
        "folder": str(run_dir),
    }
    ev = _read_json(run_dir / "evaluation.json")
    classes = [str(c) for c in ev.get("classes", [])] or [str(c) for c in
                                                          finished.get("classes") or []]
    row["classes"] = ";".join(classes)
    row["n_classes"] = len(classes) or None
    row["_val_f1"] = _eval_metrics(ev, "val", row) if ev else {}
    test = _read_json(run_dir / f"{TEST_PREFIX}.json")
    row["_test_f1"] = _eval_metrics(test, "test", row) if test else {}
    rob = _read_json(run_dir / "robustness.json")
    for r in rob.get("rows", []):
        if isinstance(r, dict) and _number(r.get("sigma")) is not None:
            row[f"blur_{r.get('mode')}_d_macro_f1_{float(r['sigma']):g}"] = \
                _number(r.get("delta_macro_f1"))
    for mode_name, slope in (rob.get("drop_slopes") or {}).items():
        row[f"drop_slope_{mode_name}"] = _number(slope)
    cost = _read_json(run_dir / COST_FILE)
    row["params"] = cost.get("params")
    row["size_mb"] = _number(cost.get("size_mb"))
    row["latency_b1_ms"] = _number(cost.get("b1_eager_ms"))
    row["gflops"] = _number(cost.get("gflops"))
    row["cost_device"] = cost.get("device_name") or cost.get("device") or ""
    if row["train_s"] is None:
        row["train_s"] = _number(record.get("train_s"))
    return row


def run_folders(root: str | os.PathLike) -> list[Path]:
    """The run folders of a sweep folder (``runs/*``), or of any folder holding run folders
    (a project's ``.runs``), or the folder itself when it is a run."""
    root = Path(root)
    if (root / "config.json").is_file():
        return [root]
    base = root / RUNS_DIR if (root / RUNS_DIR).is_dir() else root
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (
        (p / "config.json").is_file() or (p / RUN_RECORD).is_file()))


def collect(roots: Iterable[str | os.PathLike] | str | os.PathLike,
            complete_only: bool = False) -> list[dict[str, Any]]:
    """Rows of every run under ``roots`` (see :func:`run_folders`), with
    ``val_/test_macro_f1_common`` filled in over the classes every row has."""
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    rows = []
    for root in roots:
        for folder in run_folders(root):
            row = read_run(folder)
            if row is not None and (row["complete"] or not complete_only):
                rows.append(row)
    add_common_macro_f1(rows)
    rows.sort(key=lambda r: (r["model"], limit_order(r["flag_limit"]), r["seed"] or 0))
    return rows


def common_classes(rows: list[dict]) -> list[str]:
    """The classes every evaluated row has (in the first row's order)."""
    sets = [r["classes"].split(";") for r in rows if r.get("classes")]
    if not sets:
        return []
    common = set(sets[0]).intersection(*sets[1:])
    return [c for c in sets[0] if c in common]


def add_common_macro_f1(rows: list[dict]) -> list[str]:
    common = common_classes(rows)
    for r in rows:
        for prefix in ("val", "test"):
            f1 = r.get(f"_{prefix}_f1") or {}
            values = [f1[c] for c in common if c in f1]
            r[f"{prefix}_macro_f1_common"] = sum(values) / len(values) if values else None
    return common


def columns(rows: list[dict]) -> list[str]:
    """The results table's columns: identity, metrics, per-class F1, blur, cost."""
    cols = list(BASE_COLUMNS)
    for prefix in ("val", "test"):
        cols += [f"{prefix}_{m}" for m in METRICS]
    classes: list[str] = []
    for r in rows:
        for c in list(r.get("_val_f1") or {}) + list(r.get("_test_f1") or {}):
            if c not in classes:
                classes.append(c)
    for prefix in ("val", "test"):
        cols += [f"{prefix}_f1_{c}" for c in classes]
    blur = sorted({k for r in rows for k in r if k.startswith("blur_")},
                  key=lambda k: (k.split("_")[1], float(k.rsplit("_", 1)[1])))
    cols += blur + sorted({k for r in rows for k in r if k.startswith("drop_slope_")})
    return cols + COST_COLUMNS


def flat_row(row: dict) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    for prefix in ("val", "test"):
        for c, v in (row.get(f"_{prefix}_f1") or {}).items():
            out[f"{prefix}_f1_{c}"] = v
    return out


def write_results(path: str | os.PathLike, rows: list[dict]) -> Path:
    """``results.csv`` (atomically: shards finishing together each write a whole file)."""
    path = Path(path)
    cols = columns(rows)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            flat = flat_row(r)
            w.writerow({c: _fmt(flat.get(c)) for c in cols})
    os.replace(tmp, path)
    return path


def write_sweep_results(sweep_dir: str | os.PathLike) -> Path:
    return write_results(Path(sweep_dir) / RESULTS_FILE, collect(sweep_dir, complete_only=True))


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


# ---- summaries over seeds ---------------------------------------------------------------------
@dataclass
class Summary:
    """A metric over the seeds of one (model, FlagLimit): mean, sample sd, min, max, n."""

    mean: float
    sd: float
    lo: float
    hi: float
    n: int

    def text(self, digits: int = 3) -> str:
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def summarize(values: Iterable[Any]) -> Summary | None:
    vals = [float(v) for v in values if _number(v) is not None]
    if not vals:
        return None
    n = len(vals)
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return Summary(mean, sd, min(vals), max(vals), n)


def group(rows: list[dict], metric: str) -> dict[str, dict[str, Summary]]:
    """model -> FlagLimit -> the summary of ``metric`` over that cell's seeds (FlagLimits in
    order; a run that covers several limits appears under its own)."""
    cells: dict[str, dict[str, list]] = {}
    for r in rows:
        cells.setdefault(r["model"], {}).setdefault(r["flag_limit"], []).append(r.get(metric))
    out: dict[str, dict[str, Summary]] = {}
    for model in sorted(cells):
        per = {}
        for limit in sorted(cells[model], key=limit_order):
            s = summarize(cells[model][limit])
            if s is not None:
                per[limit] = s
        if per:
            out[model] = per
    return out


def limits_of(rows: list[dict]) -> list[str]:
    return sorted({r["flag_limit"] for r in rows}, key=limit_order)


def read_results_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``results.csv`` back as rows (numbers as floats, empty cells as None)."""
    out = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if v == "" or v is None:
                    row[k] = None
                    continue
                try:
                    row[k] = float(v) if k not in ("run_id", "model", "arch", "mode",
                                                    "flag_limit", "covers", "classes",
                                                    "device", "cost_device") else v
                except ValueError:
                    row[k] = v
            row["flag_limit"] = limit_label(row.get("flag_limit"))
            out.append(row)
    return out


FIELD_NAMES = {"accuracy": "accuracy", "macro_precision": "macro precision",
               "macro_recall": "macro recall", "macro_f1": "macro-F1",
               "macro_f1_common": "macro-F1 (common classes)", "weighted_f1": "weighted F1"}
