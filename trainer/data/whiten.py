"""Whitening: subtract the per-pixel mean image of the training set (RGB, values in [0, 1]).

The same mean image is subtracted from training, validation, blurred-evaluation and
prediction inputs, and it travels with the model. Two ways to compute it:

- :func:`mean_image`: the mean of the (un-augmented) training patches;
- :func:`augmented_mean_image`: the mean over the 9.6x augmented training set that the
  network actually sees (what a zero-centring input layer computes when it is handed the
  materialised augmented set), computed without materialising it.

Both accumulate in float64 over chunks of the uint8 array (a memmap stays a memmap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_CHUNK = 4096


def mean_image(
    patches_u8: np.ndarray, index: np.ndarray | None = None, chunk: int = DEFAULT_CHUNK
) -> np.ndarray:
    """(N, S, S, 3) uint8 (array or memmap) -> float32 (3, S, S) mean in [0, 1].

    ``index`` (optional) selects the rows to average (e.g. ``SampleSplit.train_idx``)."""
    n = len(patches_u8) if index is None else len(index)
    if n == 0:
        raise ValueError("mean image of an empty set")
    total = np.zeros(patches_u8.shape[1:], dtype=np.float64)
    for start in range(0, n, chunk):
        if index is None:
            block = patches_u8[start:start + chunk]
        else:
            block = patches_u8[np.sort(np.asarray(index[start:start + chunk]))]
        total += block.sum(axis=0, dtype=np.float64)  # converts on the fly, no float copy
    return (total / (n * 255.0)).transpose(2, 0, 1).astype(np.float32)


def augmented_mean_image(
    patches_u8: np.ndarray,
    aug_index: np.ndarray,
    train_idx: np.ndarray | None = None,
    chunk: int = 1024,
    device: str = "cpu",
) -> np.ndarray:
    """Mean image (3, S, S) float32 of the augmented training set described by ``aug_index``
    ((M, 3) sample, colour_op, orientation; ``sample`` indexes ``train_idx`` when given, else
    the rows of ``patches_u8``).

    Orientations are linear maps of the image, so each distinct (sample, colour op) pair is
    colour-transformed once and added to one weighted sum per orientation (weight: how many
    rows of the index hold it in that orientation); each sum is then oriented once. For the
    study's index that is a quarter of the work of transforming all M rows.
    """
    import torch

    from trainer.data.augment import apply_colour, tables

    aug_index = np.asarray(aug_index, dtype=np.int64)
    if len(aug_index) == 0:
        raise ValueError("mean image of an empty set")
    rows = aug_index[:, 0] if train_idx is None else np.asarray(train_idx)[aug_index[:, 0]]
    size = patches_u8.shape[1]
    orient_table, colour_table = tables(device, size)
    n_orient = orient_table.shape[0]
    # distinct (row, colour op) pairs through one integer key (8x faster than np.unique over
    # rows of a 2-column array), sorted by row so that memmap reads go in order
    n_ops = int(aug_index[:, 1].max()) + 1
    keys, inverse = np.unique(rows.astype(np.int64) * n_ops + aug_index[:, 1],
                              return_inverse=True)
    pairs = np.stack([keys // n_ops, keys % n_ops], axis=1)
    weights = np.bincount(inverse.reshape(-1) * n_orient + aug_index[:, 2],
                          minlength=len(pairs) * n_orient).reshape(len(pairs), n_orient)
    weights = weights.astype(np.float64)
    acc = torch.zeros(n_orient, 3 * size * size, dtype=torch.float64, device=device)
    for start in range(0, len(pairs), chunk):
        p = pairs[start:start + chunk]
        batch = torch.from_numpy(np.asarray(patches_u8[p[:, 0]])).to(device)
        x = batch.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        y = apply_colour(x, colour_table[torch.from_numpy(p[:, 1]).to(device)])
        w = torch.from_numpy(weights[start:start + chunk]).to(device, torch.float32)
        acc += (w.T @ y.reshape(len(p), -1)).to(torch.float64)  # chunk sums in float32
    total = torch.zeros(3, size * size, dtype=torch.float64, device=device)
    for o in range(n_orient):  # oriented[:, q] = acc_o[:, table[o, q]]
        total += acc[o].reshape(3, size * size)[:, orient_table[o]]
    mean = (total / len(aug_index)).reshape(3, size, size)
    return mean.to(torch.float32).cpu().numpy()


def _as_tensor(mean: torch.Tensor | np.ndarray, like: torch.Tensor) -> torch.Tensor:
    import torch

    if not isinstance(mean, torch.Tensor):
        mean = torch.from_numpy(np.asarray(mean, dtype=np.float32))
    return mean.to(device=like.device, dtype=like.dtype)


def whiten(x: torch.Tensor, mean: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``x`` (B, 3, S, S) float in [0, 1] minus ``mean`` (3, S, S) (tensor or array)."""
    return x - _as_tensor(mean, x)


def unwhiten(x: torch.Tensor, mean: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The inverse of :func:`whiten`: back to [0, 1] values."""
    return x + _as_tensor(mean, x)
