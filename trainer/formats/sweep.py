"""A sweep: the grid of training runs (models x FlagLimits x seeds) as plain data.

Standard library and NumPy only (no torch): the trainer expands and runs the grid
(:mod:`trainer.sweep`), and the desktop app reads a sweep folder's description from the same
definition.

A sweep folder::

    SWEEP_DIR/
        sweep.json          the specification (SweepSpec.to_dict), written by the first shard
        runs/<run id>/      one normal run folder per grid point (the layout ``train`` writes),
                            plus the sweep's measurements: test_evaluation.json,
                            robustness.json, cost.json and sweep_run.json (written last: the
                            run is complete)
        results.csv         one row per complete run (rebuilt from the run folders)

Grid points that would train on the same cells are run once. FlagLimit L keeps
``min(count, L)`` cells of each class and excludes classes below FlagMin (5 % of L, rounded
up): two limits with the same per-class counts (and so the same cells, for the same seed) are
one run, named after the smallest of them; a limit at or above the largest class that
excludes no class trains on exactly the cells of "all" (no FlagLimit; the sampler and the
full split draw the same cells) and is folded into it. The run records the limits it stands
for (``covers``).

Sharding: ``shard = (i, n)`` with 0 <= i < n keeps the grid points whose position in the
(deterministic) grid is i modulo n, so a Slurm array ``--array=0-(n-1)`` passes
``--shard $SLURM_ARRAY_TASK_ID/n`` and the shards together run every point exactly once.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.formats.config import ConfigError, RunConfig
from trainer.formats.sampling import flag_min

SPEC_FILE = "sweep.json"
RUNS_DIR = "runs"
RESULTS_FILE = "results.csv"
RUN_RECORD = "sweep_run.json"  # written when a run's training and measurements are complete
COST_FILE = "cost.json"
TEST_PREFIX = "test_evaluation"
ALL = "all"  # the FlagLimit of a run on every labelled cell

#: RunConfig fields a sweep passes through to every run's training (the grid sets the rest)
TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "device", "patience", "augment",
                "compile", "cuda_graph", "amp", "eval_batch_size", "heartbeat_s",
                "num_threads", "val_fraction", "weights", "label_smoothing", "class_balance",
                "class_balance_beta", "mixup", "cutmix", "color_jitter", "schedule",
                "warmup_epochs")


@dataclass(frozen=True)
class ModelEntry:
    """One architecture of the grid: a registered name, its options and, for a foundation
    model, the adaptation mode; ``label`` names it in run ids and the report."""

    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    mode: str | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or (f"{self.model}-{self.mode}" if self.mode else self.model)

    @classmethod
    def parse(cls, value: Any, where: str) -> ModelEntry:
        """``"cnn"``, ``"uni:lp"`` or ``{"model": ..., "model_args": ..., "mode": ...,
        "label": ...}``."""
        if isinstance(value, str):
            name, _, mode = value.partition(":")
            return cls(name.strip(), {}, mode.strip() or None)
        if isinstance(value, dict) and isinstance(value.get("model"), str):
            unknown = sorted(set(value) - {"model", "model_args", "mode", "label"})
            if unknown:
                raise ConfigError(f"{where}: model entry has unknown key(s) {', '.join(unknown)}")
            args = value.get("model_args") or {}
            if not isinstance(args, dict):
                raise ConfigError(f"{where}: model_args of {value['model']!r} must be an object")
            return cls(value["model"], dict(args), value.get("mode"), str(value.get("label") or ""))
        raise ConfigError(f"{where}: a model must be a name or an object with 'model', "
                          f"not {value!r}")


@dataclass(frozen=True)
class SweepRun:
    """One grid point: what to train, and where (``runs/<run_id>``)."""

    entry: ModelEntry
    flag_limit: int | None  # None: every labelled cell ("all")
    seed: int
    covers: tuple[str, ...] = ()  # the requested FlagLimits this run stands for

    @property
    def limit_label(self) -> str:
        return ALL if self.flag_limit is None else str(self.flag_limit)

    @property
    def run_id(self) -> str:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", self.entry.name)
        return f"{name}-fl{self.limit_label}-s{self.seed}"

    def record(self) -> dict[str, Any]:
        """What ``sweep_run.json`` says about the grid point (the measurements join it)."""
        return {"run_id": self.run_id, "model": self.entry.name, "arch": self.entry.model,
                "mode": self.entry.mode, "flag_limit": self.limit_label, "seed": self.seed,
                "covers": list(self.covers)}


@dataclass
class SweepSpec:
    """What a sweep trains and measures (``sweep.json``; the ``sweep`` command's flags)."""

    patchset: str
    models: list[ModelEntry]
    flag_limits: list[int | None] = field(default_factory=lambda: [None])
    seeds: list[int] = field(default_factory=lambda: [42])
    val_patchset: str | None = None
    test_patchset: str | None = None
    train: dict[str, Any] = field(default_factory=dict)  # RunConfig fields (TRAIN_FIELDS)
    sigmas: list[float] | None = None  # blur sigmas (None: the study's)
    robustness: bool = True
    cost: bool = True
    latency_runs: int = 400  # batch-1 forward passes timed per run (the study's 400)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["models"] = [asdict(m) for m in self.models]
        d["flag_limits"] = [ALL if v is None else v for v in self.flag_limits]
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str = "sweep specification") -> SweepSpec:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        known = {"patchset", "models", "flag_limits", "seeds", "val_patchset", "test_patchset",
                 "train", "sigmas", "robustness", "cost", "latency_runs"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        if not isinstance(data.get("patchset"), str) or not data["patchset"]:
            raise ConfigError(f"{where}: 'patchset' (the training patch set) is required")
        models = data.get("models")
        if not isinstance(models, list) or not models:
            raise ConfigError(f"{where}: 'models' must be a non-empty list")
        train = dict(data.get("train") or {})
        bad = sorted(set(train) - set(TRAIN_FIELDS))
        if bad:
            raise ConfigError(f"{where}: 'train' may not set {', '.join(bad)} (the grid sets "
                              f"them; allowed: {', '.join(TRAIN_FIELDS)})")
        spec = cls(
            patchset=data["patchset"],
            models=[ModelEntry.parse(m, where) for m in models],
            flag_limits=[parse_limit(v, where) for v in (data.get("flag_limits") or [ALL])],
            seeds=[_seed(v, where) for v in (data.get("seeds") or [42])],
            val_patchset=data.get("val_patchset"), test_patchset=data.get("test_patchset"),
            train=train, sigmas=data.get("sigmas"), robustness=bool(data.get("robustness", True)),
            cost=bool(data.get("cost", True)), latency_runs=int(data.get("latency_runs", 400)),
        )
        names = [m.name for m in spec.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{where}: model(s) listed twice: {', '.join(dupes)} (give each "
                              "variant a 'label')")
        # every run's configuration must be valid: refused now, before anything trains
        for entry in spec.models:
            spec.run_config(SweepRun(entry, None, spec.seeds[0]), "x").validate()
        return spec

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        return cls.from_dict(data, str(path))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)

    def run_config(self, run: SweepRun, out_dir: str) -> RunConfig:
        """The RunConfig that trains grid point ``run`` into ``out_dir``."""
        try:
            return RunConfig(
                patchset=self.patchset, out_dir=out_dir, model=run.entry.model,
                model_args=dict(run.entry.model_args), mode=run.entry.mode,
                flag_limit=run.flag_limit, seed=run.seed, val_patchset=self.val_patchset,
                name=run.run_id, **self.train)
        except TypeError as exc:
            raise ConfigError(f"sweep: bad training option ({exc})") from exc

    # ---- the grid ----------------------------------------------------------------------------
    def grid(self, class_counts: np.ndarray) -> list[SweepRun]:
        """Every grid point, with FlagLimits that draw the same cells folded into one (see the
        module docstring). ``class_counts``: labelled cells per class of the training set."""
        counts = np.asarray(class_counts, dtype=np.int64)
        limits: list[tuple[int | None, list[str]]] = []  # (effective limit, requested labels)
        by_key: dict[tuple[int, ...], int] = {}
        for limit in sorted(self.flag_limits, key=lambda v: (v is None, v or 0)):
            key = _cells_key(counts, limit)
            label = ALL if limit is None else str(limit)
            if key in by_key:
                limits[by_key[key]][1].append(label)
                continue
            full = limit is None or key == _cells_key(counts, None)
            by_key[key] = len(limits)
            limits.append((None if full else limit, [label]))
        # "all" folded in from a limit keeps the position of the smallest limit it covers
        return [SweepRun(entry, limit, seed, tuple(labels))
                for entry in self.models for limit, labels in limits for seed in self.seeds]


def _cells_key(counts: np.ndarray, limit: int | None) -> tuple[int, ...]:
    """Cells kept per class at ``limit`` (0 for an excluded class): equal keys, equal cells."""
    if limit is None:
        return tuple(int(c) for c in counts)
    kept = (counts >= flag_min(limit)) & (counts > 0)
    return tuple(int(v) for v in np.where(kept, np.minimum(counts, limit), 0))


def parse_limit(value: Any, where: str = "sweep") -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == ALL):
        return None
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: a FlagLimit must be a positive integer or 'all', "
                          f"not {value!r}") from None
    if limit < 1 or isinstance(value, bool) or (isinstance(value, float) and value != limit):
        raise ConfigError(f"{where}: a FlagLimit must be a positive integer, not {value!r}")
    return limit


def _seed(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: a seed must be an integer >= 0, not {value!r}")
    return value


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) -> (i, n)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise ConfigError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), not {text!r}")
    return int(m.group(1)), int(m.group(2))


def shard_runs(runs: list[SweepRun], shard: tuple[int, int] | None) -> list[SweepRun]:
    if shard is None:
        return list(runs)
    i, n = shard
    return [r for j, r in enumerate(runs) if j % n == i]
