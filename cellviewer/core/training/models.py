"""The models a run can train: the trainer's catalogue (``trainer.formats.catalog``, plain data,
no torch: the dialog lists the models at once, without asking a trainer process), and which of
them the form offers (foundation models only where their weights file is)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.formats.catalog import MODELS, ModelInfo
from trainer.formats.weights_files import find_weights_file

FOUNDATION = "foundation"
# How a foundation model is adapted (RunConfig.mode), with the words the dialog shows.
FOUNDATION_MODES: tuple[tuple[str, str], ...] = (
    ("lp", "linear probe (LP)"), ("ft_last", "fine-tune last block (FT_last)"))
DEFAULT_MODEL = "cnn"  # chosen first when offered


def catalogue() -> list[ModelInfo]:
    """Every model the trainer can build, in the study's order."""
    return list(MODELS)


def is_foundation(model: ModelInfo) -> bool:
    return model.kind == FOUNDATION


def weights_file(model: ModelInfo, folder: Path | None) -> Path | None:
    """A foundation model's weights file in ``folder`` (None: not there, or a scratch model)."""
    if not is_foundation(model):
        return None
    return find_weights_file(model.weights_stem or model.name, folder)


@dataclass(frozen=True)
class OfferedModel:
    """A model the form offers: scratch models always, foundation models with their weights
    file (``weights``) in the chosen weights folder."""

    info: ModelInfo
    weights: Path | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def is_foundation(self) -> bool:
        return is_foundation(self.info)
