"""Pieces shared by the scratch architectures, and the interface every model follows.

Everything here is shape-static and free of Python-side data dependence, so the models compile
with ``torch.compile`` and run inside CUDA graphs.
"""

from __future__ import annotations

import torch
from torch import nn


class CellClassifier(nn.Module):
    """The interface of every model in the registry.

    ``forward_features(x) -> (B, num_features)`` is the embedding (the features just before the
    classifier, what the app shows as embeddings and what linear probing trains on);
    ``forward_head(f) -> (B, num_classes)`` the classifier (every model keeps it in
    ``self.head``); ``forward`` chains them.
    """

    num_features: int
    num_classes: int
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability ``p`` in training.

    The mask has a fixed shape (B, 1, ..., 1), so this is CUDA-graph safe.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global average pool, ``C -> hidden -> C`` with a sigmoid gate
    that rescales the channels. ``dropout`` acts on the squeezed vector (the study's
    "SE dropout")."""

    def __init__(self, channels: int, hidden: int, dropout: float = 0.0,
                 act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.reduce = nn.Linear(channels, hidden)
        self.act = act()
        self.drop = nn.Dropout(dropout)
        self.expand = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = self.expand(self.drop(self.act(self.reduce(s))))
        return x * torch.sigmoid(s)[:, :, None, None]


class TanhMLP(nn.Sequential):
    """Flatten, then Linear + tanh layers with dropout between them: the study's fully connected
    part (for example 3,200 -> 512 -> 256). The output is the last tanh activation (no dropout
    after it: the classifier applies its own)."""

    def __init__(self, in_features: int, widths: tuple[int, ...], dropout: float,
                 input_dropout: float = 0.0):
        layers: list[nn.Module] = [nn.Flatten(1)]
        if input_dropout:
            layers.append(nn.Dropout(input_dropout))
        prev = in_features
        for i, w in enumerate(widths):
            if i:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(prev, w), nn.Tanh()]
            prev = w
        super().__init__(*layers)
        self.out_features = prev


class LinearHead(nn.Module):
    """Dropout then a linear classifier."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x))


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: the BatchNorm after it has one) + BatchNorm + ReLU, "same" padding."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )
