"""The training loss: cross-entropy with optional label smoothing, class-balancing weights and
mixed (mixup/CutMix) targets.

CRC's classes are unequal (epithelial cells outnumber "others" several times) and macro-F1 is
the study's metric, so a loss that weights the rare classes up may trade a little accuracy for
a better macro-F1; label smoothing keeps a small ViT from becoming over-confident on 40x40
patches. Both are PyTorch's own ``F.cross_entropy`` options (``weight``, ``label_smoothing``):
with weights ``w`` and smoothing ``e`` over ``K`` classes, the loss of a batch is

    sum_i [(1 - e) w[y_i] (-log p_i[y_i]) + (e / K) sum_c w[c] (-log p_i[c])] / sum_i w[y_i]

The class weights (:func:`class_weights`):

- ``inverse``: ``N / (K n_c)`` (scikit-learn's "balanced"; every class weighs the same in
  total);
- ``effective``: the effective number of samples of Cui et al. 2019, ``(1 - beta) /
  (1 - beta ** n_c)``, normalised to sum to ``K`` (``beta`` -> 0: no weighting; -> 1:
  inverse frequency).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainer.formats.config import CLASS_BALANCE_KINDS


def class_weights(labels: np.ndarray, n_classes: int, kind: str,
                  beta: float = 0.999) -> np.ndarray | None:
    """Per-class loss weights (float32, length ``n_classes``) from the training labels; None
    for ``kind == "none"``. A class without training cells gets weight 0."""
    if kind not in CLASS_BALANCE_KINDS:
        raise ValueError(f"unknown class balance {kind!r} ({', '.join(CLASS_BALANCE_KINDS)})")
    if kind == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes]
    present = counts > 0
    w = np.zeros(n_classes, dtype=np.float64)
    if kind == "inverse":
        w[present] = counts.sum() / (present.sum() * counts[present])
    else:
        w[present] = (1.0 - beta) / (1.0 - beta ** counts[present].astype(np.float64))
        w *= present.sum() / w.sum()
    return w.astype(np.float32)


def training_loss(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None,
                  smoothing: float, y2: torch.Tensor | None = None,
                  w: torch.Tensor | None = None) -> torch.Tensor:
    """The batch's loss; with ``y2`` and ``w`` (mixing) ``w * loss(y) + (1 - w) * loss(y2)``."""
    loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing)
    if y2 is None or w is None:
        return loss
    other = F.cross_entropy(logits, y2, weight=weight, label_smoothing=smoothing)
    return w * loss + (1.0 - w) * other
