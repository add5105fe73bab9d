"""The training loss's options against hand computation on a tiny batch: class weights
(inverse frequency, effective number), label smoothing, both together, mixed targets."""

import math

import numpy as np
import pytest
import torch

from trainer.engine.loss import class_weights, training_loss

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0]])
Y = torch.tensor([0, 2, 1])


def _log_softmax(row):
    m = max(row)
    z = math.log(sum(math.exp(v - m) for v in row)) + m
    return [v - z for v in row]


def _hand_loss(logits, y, w, eps):
    """PyTorch's weighted, smoothed cross-entropy written out, one sample at a time."""
    k = len(logits[0])
    num = den = 0.0
    for row, t in zip(logits, y, strict=True):
        lp = _log_softmax(row)
        num += (1 - eps) * w[t] * -lp[t] + eps / k * sum(w[c] * -lp[c] for c in range(k))
        den += w[t]
    return num / den


def test_inverse_weights_are_n_over_k_n_c():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    w = class_weights(labels, 3, "inverse")
    assert w == pytest.approx([10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)])
    assert float((w * np.bincount(labels)).sum()) == pytest.approx(10)  # total weight kept


def test_effective_number_weights_by_hand():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    beta = 0.9
    raw = [(1 - beta) / (1 - beta ** n) for n in (6, 3, 1)]
    expected = [3 * r / sum(raw) for r in raw]
    assert class_weights(labels, 3, "effective", beta) == pytest.approx(expected, rel=1e-6)
    assert class_weights(labels, 3, "none") is None


def test_a_class_without_training_cells_weighs_nothing():
    w = class_weights(np.array([0, 0, 2]), 3, "inverse")
    assert w[1] == 0 and w[0] == pytest.approx(3 / (2 * 2)) and w[2] == pytest.approx(3 / 2)


def test_unknown_balance_is_refused():
    with pytest.raises(ValueError, match="unknown class balance 'square'"):
        class_weights(np.array([0, 1]), 2, "square")


@pytest.mark.parametrize(("weights", "eps"), [(None, 0.1), ([0.5, 2.0, 1.0], 0.0),
                                               ([0.5, 2.0, 1.0], 0.2), (None, 0.0)])
def test_loss_equals_hand_computation(weights, eps):
    wt = None if weights is None else torch.tensor(weights)
    got = float(training_loss(LOGITS, Y, wt, eps))
    hand = _hand_loss(LOGITS.tolist(), Y.tolist(), weights or [1.0, 1.0, 1.0], eps)
    assert got == pytest.approx(hand, rel=1e-6)


def test_mixed_targets_weigh_the_two_losses():
    y2 = torch.roll(Y, 1, 0)
    w = torch.tensor(0.3)
    got = float(training_loss(LOGITS, Y, None, 0.1, y2, w))
    hand = (0.3 * _hand_loss(LOGITS.tolist(), Y.tolist(), [1, 1, 1], 0.1)
            + 0.7 * _hand_loss(LOGITS.tolist(), y2.tolist(), [1, 1, 1], 0.1))
    assert got == pytest.approx(hand, rel=1e-6)
