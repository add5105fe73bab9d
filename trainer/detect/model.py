"""The trained detector's network: a small U-Net that maps an RGB image to a cell-centre
heatmap (one logit per pixel; its sigmoid peaks at the centres).

Why this shape: a fully convolutional network runs on a tile of any size, so inference is
tiled like the classical detector; the skip connections keep the full-resolution detail that
places a peak within a pixel while the lower levels see a cell's whole extent. Batch
normalisation (not group or instance normalisation) because in evaluation mode it is a fixed
per-channel affine map: a pixel's output depends only on its receptive field, which is what
makes tiled inference equal to untiled (see :func:`receptive_radius`).

Its input is the image at the working resolution (``trainer.detect.data``), scaled to about
[-2, 2] by :func:`normalise`; its size must be a multiple of ``2 ** depth``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from trainer.formats.model_schema import ArchSchema, Int

ARCH = "heatmap_unet"
SCHEMA = ArchSchema({"width": Int(4, 64), "depth": Int(1, 4)}, max_params=20_000_000)
#: the prior probability of a centre pixel the head's bias starts at (CenterNet's choice: the
#: focal loss starts near its equilibrium instead of spending its first steps getting there)
PRIOR = 0.1


def normalise(rgb_u8: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 centred on mid-grey; padding with zeros is grey."""
    return ((rgb_u8.astype(np.float32) - 127.5) / 64.0).transpose(2, 0, 1)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True))


class HeatmapUNet(nn.Module):
    def __init__(self, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.width, self.depth = width, depth
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(3, chans[0])] + [
            _block(chans[i - 1], chans[i]) for i in range(1, depth + 1)])
        self.up = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i])
                                 for i in reversed(range(depth))])
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(chans[0], 1, 1)
        assert self.head.bias is not None  # a Conv2d made with bias=True
        nn.init.constant_(self.head.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1, H, W) logits."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def create(width: int = 16, depth: int = 2) -> HeatmapUNet:
    return HeatmapUNet(width=width, depth=depth)


def receptive_radius(depth: int) -> int:
    """How far (working pixels) an output pixel sees: each 3x3 convolution at level l adds
    2**l, each 2x2 pooling into level l+1 adds 2**l, each nearest upsampling from level l+1 at
    most 2**(l+1). A tile's halo at least this wide makes its core's output equal to the
    untiled output."""
    convs = sum(2 * 2 ** lv for lv in range(depth + 1)) + sum(2 * 2 ** lv for lv in range(depth))
    pools = sum(2 ** lv for lv in range(depth))
    ups = sum(2 ** (lv + 1) for lv in range(depth))
    return convs + pools + ups


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
