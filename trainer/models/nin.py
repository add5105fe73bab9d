"""NIN: two pathways over one patch, a residual CNN and an MLP, joined before the classifier."""

from __future__ import annotations

import torch

from trainer.formats.catalog import model_info
from trainer.formats.model_schema import DROPOUT, Ints, schema_for_catalog
from trainer.models._registry import register_model
from trainer.models.layers import CellClassifier, LinearHead, TanhMLP
from trainer.models.mlp import MLP_HIDDEN
from trainer.models.resnet_d4 import ResNetD4Trunk


class NIN(CellClassifier):
    """A ResNet-D4 pathway (to its 256 tanh features) and the MLP pathway (4,800 -> 1,500 -> 800
    -> 600), their 256 + 600 = 856 features concatenated (the embedding) before a linear
    classifier with dropout 0.5. Input dropout 0.1 on the MLP pathway (as in the MLP).

    Parameter count: following the description gives 11.16 M at 16 classes (ResNet-D4 trunk
    2.26 M + MLP trunk 8.88 M + classifier), not the study's 7.41 M. The gap is the MLP's: its
    layer list gives far more parameters than the study's MLP figure (see ``MLP``). No reading
    of the two pathways reproduces 7.41 M exactly; ``mlp_hidden`` selects other widths.
    """

    def __init__(self, num_classes: int, mlp_hidden: tuple[int, ...] = MLP_HIDDEN,
                 input_dropout: float = 0.1, hidden_dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.cnn = ResNetD4Trunk(hidden_dropout=hidden_dropout)
        self.mlp = TanhMLP(3 * 40 * 40, tuple(mlp_hidden), hidden_dropout, input_dropout)
        self.num_features = self.cnn.out_features + self.mlp.out_features
        self.head = LinearHead(self.num_features, num_classes, hidden_dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cnn(x), self.mlp(x)], dim=1)


#: what a model file may set (the MLP pathway's widths, as the MLP's)
NIN_SCHEMA = schema_for_catalog(model_info("nin").params, {
    "mlp_hidden": Ints(1, 6000, 1, 8), "input_dropout": DROPOUT, "hidden_dropout": DROPOUT})


@register_model(family="nin", schema=NIN_SCHEMA)
def nin(num_classes: int, mlp_hidden: tuple[int, ...] = MLP_HIDDEN, input_dropout: float = 0.1,
        hidden_dropout: float = 0.5) -> NIN:
    """NIN: ResNet-D4 pathway (256) + MLP pathway (600), 856 features to the classifier."""
    return NIN(num_classes, mlp_hidden=mlp_hidden, input_dropout=input_dropout,
               hidden_dropout=hidden_dropout)

