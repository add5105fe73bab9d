"""Whitening: the mean image (plain and of the augmented set) and the round trip."""

import numpy as np
import torch

from trainer.data.augment import augment_batch, build_augmented_index, to_float_chw
from trainer.data.whiten import augmented_mean_image, mean_image, unwhiten, whiten

torch.set_num_threads(1)


def _patches(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 40, 3), dtype=np.uint8)


def test_mean_image_in_chunks_equals_the_direct_mean(tmp_path):
    p = _patches(50)
    np.save(tmp_path / "p.npy", p)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r")
    got = mean_image(mm, chunk=7)
    want = (p.astype(np.float64) / 255).mean(axis=0).transpose(2, 0, 1)
    assert got.shape == (3, 40, 40) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)
    idx = np.array([3, 40, 7, 7, 12])
    want_idx = (p[idx].astype(np.float64) / 255).mean(axis=0).transpose(2, 0, 1)
    np.testing.assert_allclose(mean_image(mm, idx, chunk=2), want_idx, atol=1e-6)


def test_whiten_round_trip_and_zero_mean():
    p = _patches(20)
    mean = mean_image(p)
    x = to_float_chw(torch.from_numpy(p))
    w = whiten(x, mean)
    assert w.dtype == torch.float32
    assert w.mean(dim=0).abs().max().item() < 1e-5  # the training set is centred
    torch.testing.assert_close(unwhiten(w, torch.from_numpy(mean)), x, atol=1e-6, rtol=0)
    assert not torch.allclose(w, x)


def test_augmented_mean_equals_the_mean_of_every_augmented_sample():
    p = _patches(30, seed=4)
    train_idx = np.arange(2, 28, 2)  # 13 training samples out of 30 rows
    aug = build_augmented_index(len(train_idx), seed=5)
    rows = torch.from_numpy(p[train_idx[aug[:, 0]]])
    brute = augment_batch(rows, torch.from_numpy(aug[:, 1]), torch.from_numpy(aug[:, 2]))
    got = augmented_mean_image(p, aug, train_idx, chunk=5)
    np.testing.assert_allclose(got, brute.double().mean(dim=0).numpy(), atol=1e-6)
    # orientation averaging makes it differ from the plain mean
    assert np.abs(got - mean_image(p, train_idx)).max() > 1e-3
