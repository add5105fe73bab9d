"""HED stain jitter: the stain matrix is scikit-image's, neutral parameters leave a patch as it
is, and a jittered pixel equals the hand computation OD -> HED -> scale/shift -> RGB."""

import numpy as np
import pytest
import torch

from trainer.data.stain_jitter import (
    HED_FROM_RGB,
    MIN_INTENSITY,
    RGB_FROM_HED,
    jitter_table,
    stain_jitter,
)


def test_stain_vectors_are_scikit_images():
    skcolor = pytest.importorskip("skimage.color")
    assert np.array_equal(RGB_FROM_HED, skcolor.rgb_from_hed)
    assert np.allclose(HED_FROM_RGB @ RGB_FROM_HED, np.eye(3), atol=1e-9)


def test_neutral_parameters_leave_the_patch_unchanged():
    x = torch.rand((2, 3, 6, 6), generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    params = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]] * 2)
    assert torch.allclose(stain_jitter(x, params), x, atol=1e-5)


def test_one_pixel_by_hand():
    rgb = np.array([0.8, 0.4, 0.6])
    alpha, beta = np.array([1.1, 0.9, 1.0]), np.array([0.02, -0.03, 0.01])
    stains = (-np.log(np.maximum(rgb, MIN_INTENSITY))) @ HED_FROM_RGB
    expected = np.clip(np.exp(-((stains * alpha + beta) @ RGB_FROM_HED)), 0, 1)
    x = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)
    params = torch.tensor([[*alpha, *beta]], dtype=torch.float32)
    got = stain_jitter(x, params).view(3).numpy()
    assert got == pytest.approx(expected, abs=1e-5)


def test_table_ranges_and_reproducibility():
    t = jitter_table(4, 2, 1000, 0.05)
    assert t.shape == (1000, 6) and np.array_equal(t, jitter_table(4, 2, 1000, 0.05))
    assert np.all(np.abs(t[:, :3] - 1) <= 0.05) and np.all(np.abs(t[:, 3:]) <= 0.05)
    assert not np.array_equal(t, jitter_table(4, 3, 1000, 0.05))
