"""The registry's table, one row per model name: the study's training defaults (from the
catalog, ``trainer.formats.catalog``, which states them once for the trainer and the app) and
the architecture options ``create_model`` passes to the builder (the study's dropouts).

The training loop reads the defaults through ``model_spec(name).defaults`` (or
``.defaults_for(mode)`` for a foundation model) and never repeats them; the catalog's
docstring and ``TrainDefaults.study`` say which values the study states and which are ours.
The table's order is the order ``list_models`` gives (the study's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer.formats.catalog import STUDY_NUM_CLASSES, TrainDefaults, model_info

__all__ = ["STUDY_NUM_CLASSES", "STUDY_TABLE", "StudyRow"]


@dataclass(frozen=True)
class StudyRow:
    defaults: TrainDefaults | None = None
    mode_defaults: Mapping[str, TrainDefaults] = field(default_factory=dict)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    study_params_m: float | None = None


def _row(name: str, **model_kwargs: Any) -> StudyRow:
    """The row of ``name``: its defaults from the catalog, ``model_kwargs`` for its builder.
    A foundation model's defaults are per mode (the registry takes the first as its own)."""
    info = model_info(name)
    return StudyRow(
        defaults=None if info.mode_defaults else info.defaults,
        mode_defaults=info.mode_defaults, model_kwargs=model_kwargs,
        study_params_m=info.study_params_m,
    )


STUDY_TABLE: dict[str, StudyRow] = {
    "mlp": _row("mlp", input_dropout=0.1, hidden_dropout=0.5),
    "cnn": _row("cnn", input_dropout=0.1, hidden_dropout=0.5),
    # The study names no dropout for ResNet-D4; the head's 0.5 is the CNN's (same head).
    "resnet_d4": _row("resnet_d4", input_dropout=0.0, hidden_dropout=0.5),
    "nin": _row("nin", input_dropout=0.1, hidden_dropout=0.5),
    "se_resnet_d4": _row("se_resnet_d4", input_dropout=0.0, hidden_dropout=0.5, se_dropout=0.1),
    "efficientnet_b0": _row("efficientnet_b0", se_dropout=0.1, dropout=0.2, drop_path=0.0),
    "convnext_tiny": _row("convnext_tiny", drop_path=0.2),
    "custom_vit": _row("custom_vit", dropout=0.2),
    # The study reports no parameter counts for the foundation backbones (timm's own:
    # ResNet-RS50 35.7 M with its 1000-class head, Swin-T 27.5 M, ViT-L/16 303 M).
    "resnetrs50": _row("resnetrs50"),
    "ctranspath": _row("ctranspath"),
    "uni": _row("uni"),
}
