"""Which model files are cell detectors: checking a chosen file and listing a project's.

A ``.cvmodel`` says in its header what it does (``"task"``: ``detection`` or, for every older
file, ``classification``). Both checks read only that header (the standard library's JSON, no
torch: ``trainer.formats.model_header``), so the detection dialog can refuse a classifier
chosen as a detector by name, and offer the project's detectors, without loading weights. The
reads are file I/O: call them from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.formats.errors import TrainerError
from trainer.formats.model_header import model_task, read_model_header, require_task
from trainer.formats.model_schema import TASK_DETECTION


class NotADetectorError(ValueError):
    """A model file that cannot be used as a cell detector; the message names the file and
    says what it is (a classifier, damaged, not a model)."""


@dataclass(frozen=True)
class DetectorModel:
    """A detector model file and what its header says."""

    path: Path
    name: str  # for people: the project's name for it, or the file's
    diameter_px: float | None
    downsample: int | None

    def describe(self) -> str:
        parts = [self.path.name]
        if self.diameter_px:
            parts.append(f"cells of about {self.diameter_px:g} px")
        if self.downsample and self.downsample > 1:
            parts.append(f"read at 1/{self.downsample}")
        return ", ".join(parts)


def check_detector_file(path: str | Path, name: str | None = None) -> DetectorModel:
    """The detector in ``path``; :class:`NotADetectorError` naming the file and the cause
    otherwise (a cell classifier is refused by name: it classifies marked cells, it cannot
    find them)."""
    p = Path(path)
    try:
        meta = read_model_header(p)
        require_task(p, meta, TASK_DETECTION)
    except TrainerError as exc:
        raise NotADetectorError(str(exc)) from None
    return _model(p, meta, name)


def _model(path: Path, meta: dict[str, Any], name: str | None) -> DetectorModel:
    found = meta.get("detector")
    settings: dict[str, Any] = found if isinstance(found, dict) else {}
    d, f = settings.get("diameter_px"), settings.get("downsample")
    return DetectorModel(path, name or path.stem,
                         float(d) if isinstance(d, (int, float)) else None,
                         int(f) if isinstance(f, int) else None)


def registered_models(store: Any) -> list[tuple[Path, str]]:
    """(file, name) of the project's registered models that have a file (a query of the
    store's own connection: call it in the store's thread)."""
    return [(Path(r.path), r.name) for r in store.models() if r.path]


def project_detectors(store: Any = None, *, registered: list[tuple[Path, str]] | None = None,
                      project_path: str | Path | None = None) -> list[DetectorModel]:
    """The detector models a project knows: its registered models whose file is a detector,
    then its finished training runs' models that are (each file once). Files that are missing
    or damaged are left out (the dialog offers what can run).

    ``store``, or (off the store's thread, as the dialog's worker does) ``registered`` (from
    :func:`registered_models`) and ``project_path``: this reads files only."""
    if store is not None:
        registered, project_path = registered_models(store), store.path
    candidates: list[tuple[Path, str | None]] = list(registered or [])
    if project_path is not None:
        try:
            from cellviewer.core.training.runs import RunRegistry

            for run in RunRegistry(project_path).runs():
                try:
                    model = run.model_path()
                except Exception:  # a damaged run hides itself, not the list
                    continue
                if model is not None:
                    candidates.append((Path(model), f"{run.folder.name} (training run)"))
        except OSError:
            pass
    out: list[DetectorModel] = []
    seen: set[Path] = set()
    for path, name in candidates:
        key = path.resolve()
        if key in seen or not path.is_file():
            continue
        seen.add(key)
        try:
            meta = read_model_header(path)
        except TrainerError:
            continue
        if model_task(meta) == TASK_DETECTION:
            out.append(_model(path, meta, name))
    return out
