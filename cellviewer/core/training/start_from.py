"""The model files a new run can start from (``RunConfig.init_from``): fine-tuning a saved
model of the same architecture instead of training from random weights."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cellviewer.core.training import runs as runs_mod
from trainer.formats.errors import ModelFileError
from trainer.formats.model_header import read_model_header


@dataclass(frozen=True)
class StartFrom:
    """A model file a new run can start from."""

    path: Path  # absolute
    arch: str  # its architecture: only runs of the same model can start from it
    label: str  # how it is listed


@dataclass(frozen=True)
class StartHeader:
    """What a model file's header says (``arch``, ``classes``), or why it cannot be read."""

    arch: str | None = None
    classes: tuple[str, ...] = ()
    error: str | None = None


def read_start_header(path: str | os.PathLike) -> StartHeader:
    """The file's architecture and classes from its header (stdlib, a few KB: no torch)."""
    try:
        meta = read_model_header(Path(path))
    except ModelFileError as exc:
        return StartHeader(error=str(exc))
    return StartHeader(str(meta.get("arch")), tuple(str(c) for c in meta.get("classes", [])))


def _val_acc_text(value) -> str:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return f" (val acc {value:.3f})" if ok else ""


def start_candidates(store, project_path: str | os.PathLike) -> list[StartFrom]:
    """The model files of a project a run can start from, newest first: the best model of every
    finished (or stopped) run, then the project's registered models not listed already, each
    with its architecture from the run's config.json or the store's record. Opens no model
    file: it reads the store, run.json, config.json and events.jsonl only (milliseconds)."""
    project_path = Path(project_path)
    out: list[StartFrom] = []
    seen: set[Path] = set()
    for run in reversed(runs_mod.RunRegistry(project_path).runs()):
        best = run.folder / runs_mod.BEST_MODEL
        try:
            if run.status() not in (runs_mod.FINISHED, runs_mod.STOPPED) or not best.is_file():
                continue
            arch = str(run.config().get("model") or "")
            summary = run.summary()
        except (runs_mod.RunError, OSError):
            continue  # a damaged run hides itself, not the list
        if not arch:
            continue
        epoch = summary.best_epoch or {}
        path = best.resolve()
        seen.add(path)
        out.append(StartFrom(path, arch, f"run {run.name} · best model"
                             + _val_acc_text(epoch.get("val_acc"))))
    for record in reversed(store.models()):
        if not record.path or not record.arch:
            continue
        path = Path(record.path)
        if not path.is_absolute():
            path = project_path.parent / path
        if not path.is_file() or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        final = (record.meta or {}).get("final") or {}
        acc = (final.get("metrics") or {}).get("val_acc") if isinstance(final, dict) else None
        out.append(StartFrom(path.resolve(), str(record.arch),
                             f"model: {record.name}" + _val_acc_text(acc)))
    return out


def carried_classes(model_classes: list[str], run_classes: list[str]
                    ) -> tuple[list[str], list[str], list[str]]:
    """What starting from a model of ``model_classes`` does for a run of ``run_classes``, by
    class name as the trainer matches them: (carried over, new to the model, dropped)."""
    known, wanted = set(model_classes), set(run_classes)
    return ([c for c in run_classes if c in known], [c for c in run_classes if c not in known],
            [c for c in model_classes if c not in wanted])
