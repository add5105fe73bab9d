"""Foundation-model backbones (through timm) adapted by linear probing or last-layer fine-tuning.

Three backbones, as in the study:

=============  ======================================  =========================================
name           timm architecture                       weights file (see ``weights.py``)
=============  ======================================  =========================================
resnetrs50     ``resnetrs50`` (ResNet-RS50)            ``resnetrs50.safetensors``: timm's
                                                       ``resnetrs50.tf_in1k``
ctranspath     ``swin_tiny_patch4_window7_224`` with   ``ctranspath.safetensors``: the timm port
               CTransPath's conv stem (``ConvStem``)   ``1aurent/swin_tiny_patch4_window7_224.
                                                       CTransPath``, or the original
                                                       ``ctranspath.pth``
uni            ``vit_large_patch16_224``,              ``uni.bin``: ``MahmoodLab/UNI``'s
               init_values=1e-5, dynamic_img_size      ``pytorch_model.bin``
=============  ======================================  =========================================

The wrapper takes the app's 40x40 patches as float RGB in [0, 1] (input mode "unit"), resizes
them to 224x224 (bicubic, clamped back to [0, 1] as an 8-bit resize would be) and normalises
them with the backbone's mean/std, so callers never preprocess.

Modes:

- ``"lp"`` (linear probing): the whole backbone frozen (``requires_grad=False`` and kept in eval
  mode even under ``model.train()``, so BatchNorm statistics and dropout never change it); only
  the new linear ``head`` trains. Its features can be computed once per sample and cached.
- ``"ft_last"``: the last transformer block (ViT; with the final norm after it), the last stage
  (Swin, with the final norm; in timm the stage starts with its patch merging) or the last stage
  (ResNet: ``layer4``) train with the head; the rest stays frozen and in eval mode.

Weights come from a local file only (``weights=PATH`` or the ``CELLVIEWER_WEIGHTS_DIR`` folder);
``pretrained=False`` builds random weights (tests, parameter counts). ``arch`` / ``arch_kwargs``
/ ``input_size`` replace the timm architecture for tests with small models of the same family.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.formats.catalog import model_info
from trainer.formats.model_schema import Bool, Int, OptionMap, Text, schema_for_catalog
from trainer.models._registry import register_model
from trainer.models.layers import CellClassifier
from trainer.models.weights import find_weights, load_backbone_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("lp", "ft_last")


class ConvStem(nn.Module):
    """CTransPath's patch embedding: two 3x3 stride-2 convs (BatchNorm, ReLU) then a 1x1 conv to
    the embedding, replacing Swin's 4x4 patchify conv. Parameter names (``proj.0`` ...
    ``proj.6``, ``norm``) are those of the CTransPath checkpoints, so they load unchanged.
    Accepts the keyword arguments timm's Swin passes to its ``embed_layer``; outputs NHWC."""

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 4,
                 in_chans: int = 3, embed_dim: int = 96, norm_layer: Any = None,
                 **_: Any):
        super().__init__()
        if patch_size != 4 or embed_dim % 8:
            raise ValueError("ConvStem needs patch_size 4 and an embed_dim divisible by 8")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.img_size = size
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (size[0] // patch_size, size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        layers: list[nn.Module] = []
        cin, cout = in_chans, embed_dim // 8
        for _stage in range(2):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin, cout = cout, cout * 2
        layers.append(nn.Conv2d(cin, embed_dim, 1))
        self.proj = nn.Sequential(*layers)
        if isinstance(norm_layer, str):
            from timm.layers import get_norm_layer

            norm_layer = get_norm_layer(norm_layer)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


def _swin_filter(state_dict: dict, model: nn.Module) -> dict:
    """timm's Swin checkpoint converter (old layouts such as the original ctranspath.pth put
    each patch merging at the end of a stage; timm puts it at the start of the next)."""
    from timm.models.swin_transformer import checkpoint_filter_fn

    return checkpoint_filter_fn(state_dict, model)


@dataclass(frozen=True)
class BackboneRecipe:
    """How to build one backbone with timm, and where its weights come from."""

    arch: str
    family: str  # "resnet" | "swin" | "vit": decides the last stage and the input size argument
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224
    ignore_prefixes: tuple[str, ...] = ()  # the pretraining classifier in the weights file
    filter_fn: Callable[[dict, nn.Module], dict] | None = None


RECIPES: dict[str, BackboneRecipe] = {
    # ImageNet mean/std: timm's resnetrs50.tf_in1k config; CTransPath's and UNI's model cards.
    "resnetrs50": BackboneRecipe("resnetrs50", "resnet", ignore_prefixes=("fc.",)),
    "ctranspath": BackboneRecipe(
        "swin_tiny_patch4_window7_224", "swin", {"embed_layer": ConvStem},
        ignore_prefixes=("head.",), filter_fn=_swin_filter),
    "uni": BackboneRecipe(
        "vit_large_patch16_224", "vit", {"init_values": 1e-5, "dynamic_img_size": True},
        ignore_prefixes=("head.",)),
}


def last_stage_names(backbone: nn.Module) -> list[str]:
    """Submodule names of ``backbone`` that FT_last trains: the last ViT block (and the final
    norms), the last Swin stage (and the final norm) or a ResNet's ``layer4``."""
    from timm.models.resnet import ResNet
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(backbone, VisionTransformer):
        names = [f"blocks.{len(backbone.blocks) - 1}", "norm", "fc_norm"]
    elif isinstance(backbone, SwinTransformer):
        names = [f"layers.{len(backbone.layers) - 1}", "norm"]
    elif isinstance(backbone, ResNet):
        names = ["layer4"]
    else:
        raise ValueError(f"no known last stage for a {type(backbone).__name__} backbone")
    # Keep only the parts with parameters (timm uses Identity for an unused norm).
    return [n for n in names if any(True for _ in backbone.get_submodule(n).parameters())]


class FoundationClassifier(CellClassifier):
    """A timm backbone (``num_classes=0``: it returns pooled features) with a linear ``head``;
    see the module docstring for the input handling and the modes."""

    mean: torch.Tensor  # (1, 3, 1, 1) buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, backbone: nn.Module, num_classes: int, mode: str = "lp",
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 input_size: int = 224):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.backbone = backbone
        self.mode = mode
        self.input_size = int(input_size)
        self.num_classes = num_classes
        num_features = getattr(backbone, "num_features", None)  # timm models set it
        if not isinstance(num_features, int):
            raise TypeError(f"a {type(backbone).__name__} backbone has no num_features: "
                            "not a timm model?")
        self.num_features = num_features
        self.head = nn.Linear(self.num_features, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.trainable_backbone_parts = last_stage_names(backbone) if mode == "ft_last" else []
        backbone.requires_grad_(False)
        for name in self.trainable_backbone_parts:
            backbone.get_submodule(name).requires_grad_(True)
        self.train(self.training)

    @property
    def trainable_modules(self) -> list[str]:
        """Names (from the wrapper) of the modules that train in this mode."""
        return [f"backbone.{n}" for n in self.trainable_backbone_parts] + ["head"]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> FoundationClassifier:
        """Like ``nn.Module.train``, but the frozen part of the backbone stays in eval mode."""
        super().train(mode)
        if mode:
            self.backbone.eval()
            for name in self.trainable_backbone_parts:
                self.backbone.get_submodule(name).train()
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) RGB in [0, 1] -> resized to ``input_size`` and normalised."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bicubic",
                              align_corners=False).clamp_(0.0, 1.0)
        return (x - self.mean) / self.std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocess(x))


def build_foundation(
    name: str,
    num_classes: int,
    mode: str = "lp",
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    arch: str | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    input_size: int | None = None,
) -> FoundationClassifier:
    """Build foundation model ``name`` (a key of ``RECIPES``) for ``num_classes`` classes.

    With ``pretrained`` (the default) the weights come from ``weights`` (a file or a folder) or
    the ``CELLVIEWER_WEIGHTS_DIR`` folder, and a missing or unfitting file raises
    ``WeightsNotFoundError`` before anything is built. ``pretrained=False`` keeps timm's random
    initialisation. Never downloads."""
    import timm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    recipe = RECIPES[name]
    path = find_weights(name, weights) if pretrained else None
    size = int(input_size or recipe.input_size)
    kwargs = {**recipe.arch_kwargs, **(arch_kwargs or {})}
    if recipe.family in ("vit", "swin") and size != 224:
        kwargs.setdefault("img_size", size)
    backbone = timm.create_model(arch or recipe.arch, pretrained=False, num_classes=0, **kwargs)
    if path is not None:
        load_backbone_weights(backbone, path, name, recipe.ignore_prefixes, recipe.filter_fn)
    return FoundationClassifier(backbone, num_classes, mode, recipe.mean, recipe.std, size)


def _register(name: str, doc: str) -> None:
    def builder(num_classes: int, mode: str = "lp", weights: str | os.PathLike | None = None,
                pretrained: bool = True, arch: str | None = None,
                arch_kwargs: Mapping[str, Any] | None = None,
                input_size: int | None = None) -> FoundationClassifier:
        return build_foundation(name, num_classes, mode, weights, pretrained, arch, arch_kwargs,
                                input_size)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    register_model(name, family=RECIPES[name].family, kind="foundation",
                   schema=_schema(name))(builder)


def _schema(name: str):
    """What a model file of a foundation model may set: its mode, its backbone's weights file,
    a timm architecture and options (the tests' small stand-ins; bounded plain values, judged
    by the meta-device build and a cap of 1.5x the catalogue's parameter count) and the input
    size the patches are resized to (each patch becomes input_size² pixels)."""
    return schema_for_catalog(model_info(name).params, {
        "mode": Text(choices=MODES), "weights": Text(nullable=True), "pretrained": Bool(),
        "arch": Text(100, nullable=True), "arch_kwargs": OptionMap(),
        "input_size": Int(16, 1024, nullable=True)}, factor=1.5)


_register("resnetrs50", "ResNet-RS50 (ImageNet), timm resnetrs50; LP or FT_last (layer4).")
_register("ctranspath", "CTransPath: Swin-T with a conv stem, histology SSL; LP or FT_last.")
_register("uni", "UNI: ViT-L/16, histology SSL (Mahmood Lab); LP or FT_last (last block).")
