"""The trainer's models: one registry for the eight scratch architectures and the three
foundation backbones.

>>> from trainer.models import create_model, list_models, model_spec
>>> model = create_model("custom_vit", num_classes=16)
>>> model_spec("custom_vit").defaults.epochs
80

Every model has ``forward(x) -> logits``, ``forward_features(x) -> (B, D)`` (the embedding),
``forward_head(f) -> logits`` and ``num_features`` (D). Scratch models take input mode
"whitened" ((B, 3, 40, 40) float: RGB in [0, 1] minus the training mean image); foundation
models take "unit" (RGB in [0, 1]) and resize/normalise it themselves.

Importing this package imports torch but not timm (only building a foundation model does).
"""

from trainer.formats.catalog import UnknownModelError
from trainer.models import (  # noqa: F401  (importing registers the models)
    cnn,
    convnext,
    efficientnet,
    foundation,
    mlp,
    nin,
    resnet_d4,
    vit,
)
from trainer.models._registry import (
    DuplicateModelError,
    ModelSpec,
    TrainDefaults,
    count_parameters,
    create_model,
    list_models,
    model_spec,
    register_model,
    size_mb,
)
from trainer.models.weights import InvalidWeightsError, WeightsNotFoundError

__all__ = [
    "DuplicateModelError",
    "InvalidWeightsError",
    "ModelSpec",
    "TrainDefaults",
    "UnknownModelError",
    "WeightsNotFoundError",
    "count_parameters",
    "create_model",
    "list_models",
    "model_spec",
    "register_model",
    "size_mb",
]
