"""The study's augmentation plan: which training sample gets which colour op and orientation.

NumPy only (no torch), so the sampling report, which the desktop app shows before a run, can
count the augmented training set without importing torch. The ops themselves (tensor code) are
in :mod:`trainer.data.augment`; the FlagLimit sampling itself is
:mod:`trainer.formats.sampling`.

The plan, exactly as the study specifies it:

- every sampled training sample appears in four **orientations**: 0 original, 1 horizontal
  flip (left-right), 2 vertical flip (up-down), 3 transpose (rows <-> columns);
- five **colour ops**, each applied to its own random subset of the *original* training samples
  (subsets drawn independently, so one sample may be in several), every transformed copy then
  also taking the four orientations:

  ====  =========================================  ========
  op    transform                                  subset
  ====  =========================================  ========
  1     R-channel gamma 1.2                        20 %
  2     B-channel gamma 1.2                        30 %
  3     RGB gamma 1.2                              50 %
  4     HSV saturation x0.8, value x1.1            20 %
  5     HSV saturation x0.7, value x1.1, then      20 %
        B-channel gamma 1.3
  ====  =========================================  ========

  (op 0 is "no colour change"). Subset sizes are ``round(p * n)`` with halves rounded up,
  computed in integers, so the training set has ``4 * (n + sum of subset sizes)`` samples:
  exactly 9.6 n when n is a multiple of 10, within 4 x 5 x 0.5 = 10 samples of it otherwise.
"""

from __future__ import annotations

import numpy as np

AUGMENT_FACTOR = 9.6
N_ORIENTATIONS = 4
ORIENTATIONS = ("original", "hflip", "vflip", "transpose")

# (op id, name, percentage of the original training samples it is applied to)
COLOUR_OPS: tuple[tuple[int, str, int], ...] = (
    (1, "R gamma 1.2", 20),
    (2, "B gamma 1.2", 30),
    (3, "RGB gamma 1.2", 50),
    (4, "HSV S x0.8 V x1.1", 20),
    (5, "HSV S x0.7 V x1.1 + B gamma 1.3", 20),
)
N_COLOUR_OPS = 1 + len(COLOUR_OPS)  # including op 0 (none)


def colour_subset_sizes(n_train: int) -> list[int]:
    """Size of each colour op's subset for ``n_train`` samples: round(p * n), halves up."""
    return [(pct * n_train + 50) // 100 for _, _, pct in COLOUR_OPS]


def augmented_count(n_train: int) -> int:
    """Number of training samples after augmentation (the rows of the augmented index)."""
    return N_ORIENTATIONS * (n_train + sum(colour_subset_sizes(n_train)))


def build_augmented_index(n_train: int, seed: int = 42) -> np.ndarray:
    """The augmented training set as an (M, 3) int64 array of (sample, colour_op, orientation).

    ``sample`` is a position 0..n_train-1 in the *training subset* (``SampleSplit.train_idx``
    order), not a row of the patch set. Rows come grouped: the n originals, then each colour
    op's subset (ascending sample order), each entry repeated for orientations 0..3
    consecutively. The index is not shuffled: shuffle it (or a permutation of its rows) per
    epoch. The same ``n_train`` and ``seed`` always give the same index.
    """
    if n_train < 0:
        raise ValueError(f"n_train must be >= 0, got {n_train}")
    rng = np.random.default_rng(seed)
    samples = [np.arange(n_train, dtype=np.int64)]
    ops = [np.zeros(n_train, dtype=np.int64)]
    for (op_id, _, _), k in zip(COLOUR_OPS, colour_subset_sizes(n_train), strict=True):
        subset = np.sort(rng.choice(n_train, size=k, replace=False)).astype(np.int64)
        samples.append(subset)
        ops.append(np.full(k, op_id, dtype=np.int64))
    sample = np.repeat(np.concatenate(samples), N_ORIENTATIONS)
    op = np.repeat(np.concatenate(ops), N_ORIENTATIONS)
    orient = np.tile(np.arange(N_ORIENTATIONS, dtype=np.int64), len(sample) // N_ORIENTATIONS)
    return np.stack([sample, op, orient], axis=1)


def plain_index(n: int) -> np.ndarray:
    """The un-augmented (validation) index: every sample once, op 0, orientation 0."""
    out = np.zeros((n, 3), dtype=np.int64)
    out[:, 0] = np.arange(n)
    return out
