"""The model catalog: every model the trainer can build, as plain torch-free data.

What ``python -m trainer models`` prints (parameters and size at the study's 16 classes, the
embedding size, the study's training defaults, the trainable parameters per foundation mode),
plus the weights-file stem of each foundation backbone, so the app's training dialog lists the
models without starting a torch process.

>>> from trainer.formats.catalog import MODELS, model_info
>>> model_info("custom_vit").defaults.epochs
80
>>> [m.name for m in MODELS if m.kind == "foundation"]
['resnetrs50', 'ctranspath', 'uni']

The training defaults are stated here, once: the registry (``trainer.models.defaults``) reads
them from this table. The measured facts (parameters, embedding size, trainable parameters,
summaries) are measured from the registry (models built on the meta device) and written down
here; ``tests/trainer/formats/test_catalog.py`` checks every field against the registry, so a
changed architecture fails the tests until this table is updated.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

STUDY_NUM_CLASSES = 16  # the class count at which the study reports parameter counts
CATALOG_NUM_CLASSES = STUDY_NUM_CLASSES  # the class count of ``params`` (the CLI's default)
SCRATCH_BATCH_SIZE = 512  # the study's batch size for models trained from scratch
FOUNDATION_BATCH_SIZE = 256  # ... and for the foundation backbones
BYTES_PER_PARAM = 4  # float32, as saved in a model file


class UnknownModelError(ValueError):
    """A model name that is neither in the catalog nor registered (the message lists close
    matches); ``trainer.models`` raises the same class."""


@dataclass(frozen=True)
class TrainDefaults:
    """How the study trains a model. ``study`` names the fields the study states; the others
    are our choices where it is silent (listed so a reader can tell them apart)."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_epochs: int = 0
    study: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["study"] = list(self.study)
        return d


@dataclass(frozen=True)
class ModelInfo:
    """One model of the catalog.

    ``params`` and ``num_features`` (the embedding size) are at :data:`CATALOG_NUM_CLASSES`
    classes. ``defaults`` are the training defaults (for a foundation model those of its first
    mode, linear probing); ``mode_defaults`` and ``trainable`` (parameters trained) are per
    foundation mode ("lp", "ft_last") and empty for scratch models. ``weights_stem`` is the file
    name, without suffix, of a foundation model's weights in the weights folder (see
    ``weights_files.find_weights_file``); None for scratch models. ``study_params_m`` is the
    study's parameter count in millions (None where it gives none).
    """

    name: str
    kind: str  # "scratch" | "foundation"
    family: str
    input_mode: str  # "whitened" | "unit"
    summary: str
    params: int
    num_features: int
    defaults: TrainDefaults
    study_params_m: float | None = None
    mode_defaults: Mapping[str, TrainDefaults] = field(default_factory=dict)
    trainable: Mapping[str, int] = field(default_factory=dict)
    weights_stem: str | None = None

    @property
    def size_mb(self) -> float:
        """Size of the parameters in MB (10^6 bytes), float32."""
        return self.params * BYTES_PER_PARAM / 1e6

    @property
    def modes(self) -> tuple[str, ...]:
        """The adaptation modes of a foundation model; () for a scratch model."""
        return tuple(self.mode_defaults)

    def defaults_for(self, mode: str | None = None) -> TrainDefaults:
        """The training defaults for ``mode`` (None: :attr:`defaults`)."""
        if mode is None:
            return self.defaults
        if mode not in self.mode_defaults:
            known = ", ".join(self.mode_defaults) or "none (it is trained from scratch)"
            raise ValueError(f"model {self.name!r} has no mode {mode!r}; its modes: {known}")
        return self.mode_defaults[mode]

    def to_row(self) -> dict[str, Any]:
        """The row ``python -m trainer models --json`` prints for this model."""
        row: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "family": self.family,
            "input_mode": self.input_mode, "study_params_m": self.study_params_m,
            "defaults": self.defaults.to_dict(), "summary": self.summary,
        }
        if self.kind == "foundation":
            row["trainable"] = dict(self.trainable)
            row["mode_defaults"] = {k: v.to_dict() for k, v in self.mode_defaults.items()}
        row["params"] = self.params
        row["size_mb"] = self.size_mb
        row["num_features"] = self.num_features
        return row


def _scratch(epochs: int, lr: float = 1e-3, weight_decay: float = 0.0, warmup: int = 0,
             study: tuple[str, ...] = ("epochs", "batch_size")) -> TrainDefaults:
    return TrainDefaults(epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=SCRATCH_BATCH_SIZE, warmup_epochs=warmup, study=study)


# The study's two adaptation modes, the same for the three foundation backbones.
FOUNDATION_MODES: Mapping[str, TrainDefaults] = MappingProxyType({
    # Linear probing: frozen backbone, new linear head (the study gives no weight decay).
    "lp": TrainDefaults(epochs=50, lr=5e-4, weight_decay=0.0, batch_size=FOUNDATION_BATCH_SIZE,
                        study=("epochs", "lr", "batch_size")),
    # Last block / stage + head trainable.
    "ft_last": TrainDefaults(epochs=50, lr=1e-4, weight_decay=0.01,
                             batch_size=FOUNDATION_BATCH_SIZE,
                             study=("epochs", "lr", "weight_decay", "batch_size")),
})


def _foundation(name: str, family: str, summary: str, params: int, num_features: int,
                trainable: dict[str, int]) -> ModelInfo:
    return ModelInfo(
        name=name, kind="foundation", family=family, input_mode="unit", summary=summary,
        params=params, num_features=num_features, defaults=FOUNDATION_MODES["lp"],
        mode_defaults=FOUNDATION_MODES, trainable=MappingProxyType(trainable), weights_stem=name,
    )


# The study's models in the order of its table. Where the study is silent we chose: learning
# rate 1e-3 and no weight decay (MLP, CNN, ResNet-D4, NIN, SE-ResNet-D4), AdamW with a cosine
# schedule for all, 5 warm-up epochs for ConvNeXt and CustomViT (unstable without).
MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        "mlp", "scratch", "mlp", "whitened",
        "MLP: 4,800 -> 1,500 -> 800 -> 600, tanh, dropout 0.1 in / 0.5 hidden.",
        params=8_892_516, num_features=600, defaults=_scratch(30), study_params_m=3.37,
    ),
    ModelInfo(
        "cnn", "scratch", "cnn", "whitened",
        "CNN: 4 conv blocks 48/64/128/128, max-pool to 5x5, 3,200 -> 512 -> 256 tanh.",
        params=2_024_848, num_features=256, defaults=_scratch(100), study_params_m=2.02,
    ),
    ModelInfo(
        "resnet_d4", "scratch", "resnet_d4", "whitened",
        "ResNet-D4: residual blocks 24/48/64/128, RGB concat after block 1, 3,200 -> 512 -> 256.",
        params=2_265_320, num_features=256, defaults=_scratch(50), study_params_m=2.27,
    ),
    ModelInfo(
        "nin", "scratch", "nin", "whitened",
        "NIN: ResNet-D4 pathway (256) + MLP pathway (600), 856 features to the classifier.",
        params=11_157_820, num_features=856, defaults=_scratch(50), study_params_m=7.41,
    ),
    ModelInfo(
        "se_resnet_d4", "scratch", "resnet_d4", "whitened",
        "SE-ResNet-D4: ResNet-D4 with five SE blocks (reduction 2) in blocks 3-4 and at the end.",
        params=2_323_432, num_features=256, defaults=_scratch(50), study_params_m=2.33,
    ),
    ModelInfo(
        "efficientnet_b0", "scratch", "efficientnet", "whitened",
        "EfficientNet-B0 for 40x40: stride-1 3x3 stem, B0's MBConv stages with SE, head 1,280.",
        params=3_926_668, num_features=1280, study_params_m=3.93,
        defaults=_scratch(50, lr=1e-4, study=("epochs", "lr", "batch_size")),
    ),
    ModelInfo(
        "convnext_tiny", "scratch", "convnext", "whitened",
        "ConvNeXt-Tiny for 40x40: 2x2 stem to 48, stages 2/2/6/2 at 48-384, 5x5 depthwise.",
        params=4_784_224, num_features=384, study_params_m=4.78,
        defaults=_scratch(60, lr=1e-4, weight_decay=0.2, warmup=5,
                          study=("epochs", "lr", "weight_decay", "batch_size")),
    ),
    ModelInfo(
        "custom_vit", "scratch", "vit", "whitened",
        "CustomViT: 8x8 patches, 160-dim, 6 pre-norm blocks x 4 heads, MLP 640, class token.",
        params=1_893_776, num_features=160, study_params_m=1.89,
        defaults=_scratch(80, lr=1e-4, weight_decay=0.01, warmup=5,
                          study=("epochs", "lr", "weight_decay", "batch_size")),
    ),
    # The study reports no parameter counts for the foundation backbones.
    _foundation("resnetrs50", "resnet",
                "ResNet-RS50 (ImageNet), timm resnetrs50; LP or FT_last (layer4).",
                params=33_675_696, num_features=2048,
                trainable={"lp": 32_784, "ft_last": 21_296_656}),
    _foundation("ctranspath", "swin",
                "CTransPath: Swin-T with a conv stem, histology SSL; LP or FT_last.",
                params=27_532_342, num_features=768,
                trainable={"lp": 12_304, "ft_last": 15_380_416}),
    _foundation("uni", "vit",
                "UNI: ViT-L/16, histology SSL (Mahmood Lab); LP or FT_last (last block).",
                params=303_367_184, num_features=1024,
                trainable={"lp": 16_400, "ft_last": 12_616_720}),
)

_BY_NAME: Mapping[str, ModelInfo] = MappingProxyType({m.name: m for m in MODELS})


def model_names(kind: str | None = None) -> list[str]:
    """The catalog's model names in table order, optionally only those of ``kind``."""
    return [m.name for m in MODELS if kind is None or m.kind == kind]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; an unknown name raises :class:`UnknownModelError`
    listing the close matches and every known name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise unknown_model(name, list(_BY_NAME)) from None


def unknown_model(name: str, known: list[str]) -> UnknownModelError:
    """The error for a model name that is none of ``known``: the close matches, then all."""
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(f"unknown model {name!r}.{hint} Known models: {', '.join(known)}")


def model_rows(kind: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``python -m trainer models --json`` (at the default 16 classes), without
    torch: what the training dialog's ``catalogue_from_rows`` reads."""
    return [m.to_row() for m in MODELS if kind is None or m.kind == kind]
