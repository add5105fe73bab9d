"""Mixup and CutMix: the per-step tables are functions of (seed, epoch), and a mixed batch is
the convex combination (mixup) or the box paste (CutMix) of the batch and its roll by one."""

import numpy as np
import pytest
import torch

from trainer.data.mixing import mix_batch, mix_table


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((4, 3, 8, 8), generator=g), torch.tensor([0, 1, 2, 3])


def test_tables_depend_only_on_seed_and_epoch():
    a = mix_table(7, 3, 20, 40, 0.4, 1.0)
    assert np.array_equal(a, mix_table(7, 3, 20, 40, 0.4, 1.0))
    assert not np.array_equal(a, mix_table(7, 4, 20, 40, 0.4, 1.0))
    assert a.shape == (20, 5) and a.dtype == np.float32


def test_off_gives_identity_rows_and_the_batch_unchanged():
    table = mix_table(1, 1, 5, 8, 0.0, 0.0)
    assert np.array_equal(table, np.tile([1, 0, 0, 0, 0], (5, 1)).astype(np.float32))
    x, y = _batch()
    mixed, _, w = mix_batch(x, y, torch.from_numpy(table[0]))
    assert torch.equal(mixed, x) and float(w) == 1.0


def test_mixup_is_the_convex_combination_with_the_rolled_batch():
    table = mix_table(5, 2, 3, 8, 0.4, 0.0)
    lam = float(table[0, 0])
    assert 0 < lam < 1 and table[0, 1:].tolist() == [0, 0, 0, 0]
    x, y = _batch()
    mixed, y2, w = mix_batch(x, y, torch.from_numpy(table[0]))
    x2 = x[[3, 0, 1, 2]]
    assert torch.allclose(mixed, lam * x + (1 - lam) * x2, atol=1e-6)
    assert y2.tolist() == [3, 0, 1, 2]
    assert float(w) == pytest.approx(lam)


def test_cutmix_pastes_the_box_and_weighs_by_area():
    table = mix_table(11, 1, 50, 8, 0.0, 1.0)
    # a row whose box is neither empty nor the whole patch
    row = next(r for r in table if 0 < (r[2] - r[1]) * (r[4] - r[3]) < 64)
    y0, y1, x0, x1 = (int(v) for v in row[1:])
    assert row[0] == 1.0
    x, y = _batch(1)
    mixed, _, w = mix_batch(x, y, torch.from_numpy(row))
    x2 = x[[3, 0, 1, 2]]
    expected = x.clone()
    expected[:, :, y0:y1, x0:x1] = x2[:, :, y0:y1, x0:x1]
    assert torch.equal(mixed, expected)
    assert float(w) == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 64)


def test_both_on_mix_about_half_the_steps_each():
    table = mix_table(3, 1, 400, 40, 0.4, 1.0)
    cut = table[:, 0] == 1.0
    assert 150 < cut.sum() < 250
    assert np.all(table[~cut, 1:] == 0)  # mixup rows have no box
