"""PatchBatches: the per-batch path yields the augmented, whitened set without materialising
it, batch for batch equal to applying augment_batch and whiten to the plan's rows."""

import numpy as np
import torch

from trainer.data.augment import augment_batch, augmented_count, to_float_chw
from trainer.data.loader import PatchBatches
from trainer.data.whiten import mean_image

torch.set_num_threads(1)


def _data(n=37, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8), rng.integers(0, 3, n)


def test_training_epoch_is_the_augmented_set_in_seeded_shuffled_order():
    p, y = _data()
    mean = mean_image(p)
    batches = PatchBatches(p, y, mean, augment=True, seed=9, batch_size=64)
    assert batches.n_samples == augmented_count(37) and len(batches) == -(-batches.n_samples // 64)
    xs, ys = zip(*batches.epoch(0), strict=True)
    x, yy = torch.cat(xs), torch.cat(ys)
    assert x.shape == (batches.n_samples, 3, 40, 40) and yy.dtype == torch.int64
    order = batches.order(0)
    plan = batches.plan[order]
    want = augment_batch(torch.from_numpy(p[plan[:, 0].numpy()]), plan[:, 1], plan[:, 2])
    torch.testing.assert_close(x, want - torch.from_numpy(mean), atol=1e-6, rtol=0)
    assert torch.equal(yy, torch.from_numpy(y[plan[:, 0].numpy()]))
    # seeded: the same epoch again gives the same order, the next epoch another
    assert torch.equal(order, batches.order(0)) and not torch.equal(order, batches.order(1))
    assert sorted(order.tolist()) == list(range(batches.n_samples))


def test_validation_batches_are_plain_ordered_and_complete():
    p, y = _data(n=10)
    mean = mean_image(p)
    batches = PatchBatches(p, y, mean, batch_size=4)
    assert batches.n_samples == 10 and len(batches) == 3
    x = torch.cat([b[0] for b in batches.epoch(0)])
    torch.testing.assert_close(x, to_float_chw(torch.from_numpy(p)) - torch.from_numpy(mean))
    no_mean = PatchBatches(p, y, None, batch_size=4, drop_last=True)
    assert len(no_mean) == 2
    first, _ = next(iter(no_mean.epoch()))
    assert first.min() >= 0 and first.max() <= 1


def test_read_only_memmap_input_is_accepted(tmp_path):
    p, y = _data(n=5)
    np.save(tmp_path / "p.npy", p)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r")
    x, _ = next(iter(PatchBatches(mm, y, batch_size=5).epoch()))
    assert torch.equal(x, to_float_chw(torch.from_numpy(p)))
