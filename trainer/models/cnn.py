"""The plain convolutional network."""

from __future__ import annotations

import torch
from torch import nn

from trainer.formats.catalog import model_info
from trainer.formats.model_schema import DROPOUT, Ints, schema_for_catalog
from trainer.models._registry import register_model
from trainer.models.layers import CellClassifier, LinearHead, TanhMLP

CNN_CHANNELS = (48, 64, 128, 128)


class CNN(CellClassifier):
    """Four 3x3 conv blocks (48, 64, 128, 128 channels, ReLU), 2x2 max-pooling after the first
    three (40 -> 20 -> 10 -> 5), flatten 128x5x5 = 3,200 -> 512 -> 256 (tanh) -> classes.
    Dropout 0.1 on the input, 0.5 between the dense layers. The embedding is the 256 layer.

    No BatchNorm: the study lists none, and its 2.02 M parameters rule it out (BatchNorm's 736
    extra parameters would make 2.03 M). Ours: 2,024,848 at 16 classes.
    """

    def __init__(self, num_classes: int, channels: tuple[int, ...] = CNN_CHANNELS,
                 dense: tuple[int, ...] = (512, 256), input_dropout: float = 0.1,
                 hidden_dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout else []
        cin = 3
        size = 40
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            cin = c
        self.convs = nn.Sequential(*layers)
        self.dense = TanhMLP(cin * size * size, tuple(dense), hidden_dropout)
        self.num_features = self.dense.out_features
        self.head = LinearHead(self.num_features, num_classes, hidden_dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(x))


#: what a model file may set (up to 6 conv blocks: 40 px pooled to 1; up to 1,024 channels)
CNN_SCHEMA = schema_for_catalog(model_info("cnn").params, {
    "channels": Ints(1, 1024, 1, 6), "input_dropout": DROPOUT, "hidden_dropout": DROPOUT})


@register_model(family="cnn", schema=CNN_SCHEMA)
def cnn(num_classes: int, channels: tuple[int, ...] = CNN_CHANNELS, input_dropout: float = 0.1,
        hidden_dropout: float = 0.5) -> CNN:
    """CNN: 4 conv blocks 48/64/128/128, max-pool to 5x5, 3,200 -> 512 -> 256 tanh."""
    return CNN(num_classes, channels=channels, input_dropout=input_dropout,
               hidden_dropout=hidden_dropout)
