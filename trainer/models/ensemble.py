"""An ensemble of trained models as one model: the mean of its members' class probabilities.

It is not in the registry (nothing trains an ensemble); a model file whose ``arch`` is
``"ensemble"`` (:data:`ENSEMBLE_ARCH`) holds it, and the model-file loader
(:mod:`trainer.engine.modelfile`) builds it here. Its ``arch_kwargs``::

    {"members": [{"arch": "cnn", "arch_kwargs": {...}, "input_mode": "whitened"}, ...]}

The ensemble takes input mode "unit" (RGB in [0, 1]) and whitens for each member with that
member's own mean image (buffer ``means``, one per member; seeds draw different augmentation
plans and so slightly different means). Its ``forward`` returns ``log(mean_i softmax(z_i))``,
so the softmax every reader applies to a model's logits gives back exactly the mean of the
members' probabilities. Embeddings are the members' embeddings side by side.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer.formats.errors import BadModelError
from trainer.models.layers import CellClassifier

ENSEMBLE_ARCH = "ensemble"
MAX_MEMBERS = 16
_TINY = 1e-30  # keeps log() finite where every member gives a class probability 0


class ProbabilityEnsemble(CellClassifier):
    means: torch.Tensor

    def __init__(self, members: list[Any], whitened: list[bool]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.whitened = list(whitened)
        self.register_buffer("means", torch.zeros(len(members), 3, 40, 40))
        self.num_classes = int(members[0].num_classes)
        self.widths = [int(m.num_features) for m in members]
        self.num_features = sum(self.widths)
        self.head = nn.Identity()  # the members keep their own heads

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for i, member in enumerate(self.members):
            assert isinstance(member, CellClassifier)
            feats.append(member.forward_features(x - self.means[i] if self.whitened[i] else x))
        return torch.cat(feats, dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        probs = None
        for member, f in zip(self.members, torch.split(features, self.widths, dim=1),
                             strict=True):
            assert isinstance(member, CellClassifier)
            p = torch.softmax(member.forward_head(f).float(), dim=1)
            probs = p if probs is None else probs + p
        assert probs is not None
        return torch.log((probs / len(self.members)).clamp_min(_TINY))


def member_specs(where: object, kwargs: Any) -> list[dict[str, Any]]:
    """The ``members`` of an ensemble's ``arch_kwargs``, their structure checked (each
    member's own options are checked against its architecture by the caller)."""
    if not isinstance(kwargs, dict) or set(kwargs) != {"members"}:
        raise BadModelError(f"{where}: an ensemble's arch_kwargs must be {{'members': [...]}}")
    members = kwargs["members"]
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise BadModelError(f"{where}: an ensemble needs 1 to {MAX_MEMBERS} members")
    out = []
    for i, m in enumerate(members):
        if not isinstance(m, dict) or not isinstance(m.get("arch"), str) \
                or m.get("input_mode") not in ("whitened", "unit") \
                or not isinstance(m.get("arch_kwargs") or {}, dict) \
                or set(m) - {"arch", "arch_kwargs", "input_mode", "source"}:
            raise BadModelError(f"{where}: ensemble member {i + 1} must name its arch, "
                                "arch_kwargs and input_mode")
        if m["arch"] == ENSEMBLE_ARCH:
            raise BadModelError(f"{where}: an ensemble member cannot be an ensemble")
        out.append(m)
    return out


def build_ensemble(members: list[Any], specs: list[dict[str, Any]]
                   ) -> ProbabilityEnsemble:
    return ProbabilityEnsemble(members, [s["input_mode"] == "whitened" for s in specs])
