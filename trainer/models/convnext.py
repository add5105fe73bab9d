"""ConvNeXt-Tiny adapted to 40x40 patches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.formats.catalog import model_info
from trainer.formats.model_schema import DROPOUT, Int, schema_for_catalog
from trainer.models._registry import register_model
from trainer.models.layers import CellClassifier, DropPath, LinearHead


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise kxk conv, LayerNorm, 1x1 expansion x4 with GELU, 1x1 projection, layer scale,
    stochastic depth, residual. The pointwise convs are Linear layers on NHWC (as in ConvNeXt)."""

    def __init__(self, dim: int, kernel: int = 5, drop_path: float = 0.0,
                 layer_scale: float = 1e-6):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw(x).permute(0, 2, 3, 1)
        h = self.pw2(self.act(self.pw1(self.norm(h)))) * self.gamma
        return x + self.drop_path(h.permute(0, 3, 1, 2))


class ConvNeXtTiny(CellClassifier):
    """ConvNeXt-Tiny for 40x40: a 2x2 stride-2 stem to 48 channels (+LayerNorm), stages of
    depth 2, 2, 6, 2 with 48, 96, 192, 384 channels (20, 10, 5, 2 pixels), 5x5 depthwise kernels,
    LayerNorm + 2x2 stride-2 conv between stages, stochastic depth rising linearly to 0.2, layer
    scale 1e-6; global average pool + LayerNorm (the embedding, 384) and a linear classifier.
    4,784,224 parameters at 16 classes (study: 4.78 M)."""

    def __init__(self, num_classes: int, depths: tuple[int, ...] = (2, 2, 6, 2),
                 dims: tuple[int, ...] = (48, 96, 192, 384), kernel: int = 5,
                 drop_path: float = 0.2, dropout: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        n = sum(depths)
        # plain Python, not torch.linspace: the model may be built on the meta device
        rates = [drop_path * i / max(n - 1, 1) for i in range(n)]
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 2, stride=2),
                                  LayerNorm2d(dims[0], eps=1e-6))
        stages: list[nn.Module] = []
        k = 0
        for i, (d, c) in enumerate(zip(depths, dims, strict=True)):
            layers: list[nn.Module] = []
            if i:
                layers += [LayerNorm2d(dims[i - 1], eps=1e-6),
                           nn.Conv2d(dims[i - 1], c, 2, stride=2)]
            layers += [ConvNeXtBlock(c, kernel, rates[k + j]) for j in range(d)]
            k += d
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.num_features = dims[-1]
        self.head = LinearHead(dims[-1], num_classes, dropout)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x)).mean(dim=(2, 3)))


#: what a model file may set: an odd depthwise kernel up to 11 (the study's is 5)
CONVNEXT_SCHEMA = schema_for_catalog(model_info("convnext_tiny").params, {
    "drop_path": DROPOUT, "kernel": Int(1, 11, choices=(1, 3, 5, 7, 9, 11)),
    "dropout": DROPOUT})


@register_model(family="convnext", schema=CONVNEXT_SCHEMA)
def convnext_tiny(num_classes: int, drop_path: float = 0.2, kernel: int = 5,
                  dropout: float = 0.0) -> ConvNeXtTiny:
    """ConvNeXt-Tiny for 40x40: 2x2 stem to 48, stages 2/2/6/2 at 48-384, 5x5 depthwise."""
    return ConvNeXtTiny(num_classes, kernel=kernel, drop_path=drop_path, dropout=dropout)
