"""The models a run can train, as the training form needs them: name, kind, size, summary,
the study's defaults per adaptation mode, and where a foundation model's weights file is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainer.weights_files import find_weights_file

SCRATCH = "scratch"
FOUNDATION = "foundation"
# How a foundation model is adapted (RunConfig.mode), with the words the dialog shows.
FOUNDATION_MODES: tuple[tuple[str, str], ...] = (
    ("lp", "linear probe (LP)"), ("ft_last", "fine-tune last block (FT_last)"))
DEFAULT_MODEL = "cnn"  # chosen first when the trainer offers it


@dataclass(frozen=True)
class StudyDefaults:
    """The study's training values for a model (and adaptation mode)."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int


@dataclass(frozen=True)
class ModelOption:
    """One model the trainer offers. ``defaults[""]`` are the model's own defaults (for a
    foundation model those of its first mode), ``defaults[mode]`` those of each mode."""

    name: str
    kind: str  # SCRATCH | FOUNDATION
    defaults: Mapping[str, StudyDefaults]
    summary: str = ""
    params: int | None = None
    modes: tuple[str, ...] = ()
    weights_stem: str | None = None  # a foundation model's weights file name, no suffix

    @property
    def is_foundation(self) -> bool:
        return self.kind == FOUNDATION

    def defaults_for(self, mode: str | None) -> StudyDefaults:
        """The study's values in ``mode`` (scratch models have one set)."""
        return self.defaults.get(mode or "") or self.defaults[""]

    def weights_file(self, folder: Path | None) -> Path | None:
        """A foundation model's weights file in ``folder`` (None: not there, or scratch)."""
        if not self.is_foundation:
            return None
        return find_weights_file(self.weights_stem or self.name, folder)


@dataclass(frozen=True)
class OfferedModel:
    """A model the form offers now: scratch models always, foundation models with their
    weights file (``weights``) in the chosen weights folder."""

    option: ModelOption
    weights: Path | None = None

    @property
    def name(self) -> str:
        return self.option.name


def _defaults(d: Mapping) -> StudyDefaults:
    return StudyDefaults(int(d["epochs"]), float(d["lr"]), float(d["weight_decay"]),
                         int(d["batch_size"]))


def options_from_rows(rows: list[dict]) -> list[ModelOption]:
    """Model options from the rows of ``python -m trainer models --json``."""
    out = []
    for r in rows:
        mode_rows = r.get("mode_defaults") or {}
        defaults = {"": _defaults(r["defaults"]), **{m: _defaults(d) for m, d in
                                                      mode_rows.items()}}
        out.append(ModelOption(
            name=str(r["name"]), kind=str(r.get("kind", SCRATCH)), defaults=defaults,
            summary=str(r.get("summary", "")), params=r.get("params"),
            modes=tuple(mode_rows), weights_stem=r.get("weights_stem")))
    return out

