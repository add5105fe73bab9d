"""THE table of the study's training defaults, one row per model name.

The training loop reads these through ``model_spec(name).defaults`` (or ``.defaults_for(mode)``
for a foundation model) and never repeats them. Each ``TrainDefaults.study`` lists the fields
the study states; every other value is our choice where the study is silent:

- learning rate 1e-3 (Adam's usual default) and no weight decay for the five models whose rate
  the study does not give (MLP, CNN, ResNet-D4, NIN, SE-ResNet-D4);
- AdamW with a cosine schedule for all; 5 warm-up epochs for the two transformer-like models
  (ConvNeXt, CustomViT), which are the ones that are unstable without;
- batch 512 for the scratch models and 256 for foundation models (both from the study).

``model_kwargs`` are the architecture options ``create_model`` passes to the builder (the
study's dropouts); ``study_params_m`` is the study's parameter count at 16 classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer.models._registry import TrainDefaults

SCRATCH_BATCH_SIZE = 512
FOUNDATION_BATCH_SIZE = 256
STUDY_NUM_CLASSES = 16  # the class count at which the study reports parameter counts


@dataclass(frozen=True)
class StudyRow:
    defaults: TrainDefaults | None = None
    mode_defaults: Mapping[str, TrainDefaults] = field(default_factory=dict)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    study_params_m: float | None = None


def _scratch(epochs: int, lr: float = 1e-3, weight_decay: float = 0.0, warmup: int = 0,
             study: tuple[str, ...] = ("epochs", "batch_size")) -> TrainDefaults:
    return TrainDefaults(epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=SCRATCH_BATCH_SIZE, warmup_epochs=warmup, study=study)


# Foundation models: the study's two adaptation modes, the same for the three backbones.
FOUNDATION_MODES: dict[str, TrainDefaults] = {
    # Linear probing: frozen backbone, new linear head (the study gives no weight decay).
    "lp": TrainDefaults(epochs=50, lr=5e-4, weight_decay=0.0, batch_size=FOUNDATION_BATCH_SIZE,
                        study=("epochs", "lr", "batch_size")),
    # Last block / stage + head trainable.
    "ft_last": TrainDefaults(epochs=50, lr=1e-4, weight_decay=0.01,
                             batch_size=FOUNDATION_BATCH_SIZE,
                             study=("epochs", "lr", "weight_decay", "batch_size")),
}

STUDY_TABLE: dict[str, StudyRow] = {
    "mlp": StudyRow(
        _scratch(30),
        model_kwargs={"input_dropout": 0.1, "hidden_dropout": 0.5},
        study_params_m=3.37,
    ),
    "cnn": StudyRow(
        _scratch(100),
        model_kwargs={"input_dropout": 0.1, "hidden_dropout": 0.5},
        study_params_m=2.02,
    ),
    "resnet_d4": StudyRow(
        _scratch(50),
        # The study names no dropout for ResNet-D4; the head's 0.5 is the CNN's (same head).
        model_kwargs={"input_dropout": 0.0, "hidden_dropout": 0.5},
        study_params_m=2.27,
    ),
    "nin": StudyRow(
        _scratch(50),
        model_kwargs={"input_dropout": 0.1, "hidden_dropout": 0.5},
        study_params_m=7.41,
    ),
    "se_resnet_d4": StudyRow(
        _scratch(50),
        model_kwargs={"input_dropout": 0.0, "hidden_dropout": 0.5, "se_dropout": 0.1},
        study_params_m=2.33,
    ),
    "efficientnet_b0": StudyRow(
        _scratch(50, lr=1e-4, study=("epochs", "lr", "batch_size")),
        model_kwargs={"se_dropout": 0.1, "dropout": 0.2, "drop_path": 0.0},
        study_params_m=3.93,
    ),
    "convnext_tiny": StudyRow(
        _scratch(60, lr=1e-4, weight_decay=0.2, warmup=5,
                 study=("epochs", "lr", "weight_decay", "batch_size")),
        model_kwargs={"drop_path": 0.2},
        study_params_m=4.78,
    ),
    "custom_vit": StudyRow(
        _scratch(80, lr=1e-4, weight_decay=0.01, warmup=5,
                 study=("epochs", "lr", "weight_decay", "batch_size")),
        model_kwargs={"dropout": 0.2},
        study_params_m=1.89,
    ),
    # The study reports no parameter counts for the foundation backbones (timm's own:
    # ResNet-RS50 35.7 M with its 1000-class head, Swin-T 27.5 M, ViT-L/16 303 M).
    "resnetrs50": StudyRow(mode_defaults=FOUNDATION_MODES),
    "ctranspath": StudyRow(mode_defaults=FOUNDATION_MODES),
    "uni": StudyRow(mode_defaults=FOUNDATION_MODES),
}
