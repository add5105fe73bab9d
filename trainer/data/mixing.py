"""Mixup and CutMix as per-step tables plus one fixed-shape tensor function.

Small 40x40 patches with a few thousand cells per class overfit quickly; mixup (Zhang et al.
2018: a convex combination of two samples and of their labels) and CutMix (Yun et al. 2019: a
box of one sample pasted into another, labels weighted by area) are the usual regularisers.

Why tables: the training step must stay free of host syncs and data-dependent shapes (it is
compiled and captured in a CUDA graph, ``trainer.engine.step``). So the random draws of an
epoch (one mixing weight and one box per step) are made on the host, from ``(seed, epoch)``
only, into a (steps, 5) float32 table that is copied to the device before the epoch; the step
reads its row by its step index. A resumed run, and every rank under DDP, sees the same draws.

Each row is ``(lam, y0, y1, x0, x1)``: outside the box ``[y0, y1) x [x0, x1)`` a pixel is
``lam * x + (1 - lam) * x2``, inside it is ``x2``, where ``x2`` is the batch rolled by one
(the batch is already a random permutation, so its neighbour is a random partner; the trick
timm uses). Mixup rows have an empty box; CutMix rows have ``lam = 1``. The label weight of
the first sample is the mean of that per-pixel weight (``1 - box area / S^2`` for CutMix).
With both enabled, each step is mixup or CutMix with probability 1/2 (as timm's ``Mixup``).
Under DDP every rank uses the step's row on its own share of the batch, so the partners are
drawn within a rank's share (the same distribution; not bit for bit one process's pairs).
"""

from __future__ import annotations

import numpy as np
import torch

MIX_SEED_SALT = 6151  # keeps these draws independent of the epoch permutation's


def mix_table(seed: int, epoch: int, steps: int, size: int, mixup: float,
              cutmix: float) -> np.ndarray:
    """(steps, 5) float32 rows ``(lam, y0, y1, x0, x1)`` for ``epoch``; ``mixup``/``cutmix``
    are the Beta(alpha, alpha) parameters (0: off; both 0 gives identity rows)."""
    rng = np.random.default_rng([seed, MIX_SEED_SALT, epoch])
    out = np.zeros((steps, 5), dtype=np.float32)
    out[:, 0] = 1.0
    if mixup <= 0 and cutmix <= 0:
        return out
    use_cut = np.full(steps, cutmix > 0)
    if mixup > 0 and cutmix > 0:
        use_cut = rng.random(steps) < 0.5
    for i in range(steps):
        if use_cut[i]:
            lam = rng.beta(cutmix, cutmix)
            cut = int(round(size * np.sqrt(1.0 - lam)))  # the box's side, as in CutMix
            cy, cx = rng.integers(0, size, 2)
            y0, y1 = np.clip([cy - cut // 2, cy - cut // 2 + cut], 0, size)
            x0, x1 = np.clip([cx - cut // 2, cx - cut // 2 + cut], 0, size)
            out[i] = (1.0, y0, y1, x0, x1)
        else:
            out[i, 0] = rng.beta(mixup, mixup)
    return out


def mix_weight_map(row: torch.Tensor, size: int) -> torch.Tensor:
    """(size, size) float32: the weight of the first sample at each pixel for one table row."""
    r = torch.arange(size, device=row.device, dtype=torch.float32)
    in_y = (r >= row[1]) & (r < row[2])
    in_x = (r >= row[3]) & (r < row[4])
    box = in_y[:, None] & in_x[None, :]
    return torch.where(box, torch.zeros_like(row[0]), row[0].expand(size, size))


def mix_batch(x: torch.Tensor, y: torch.Tensor,
              row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix (B, C, S, S) ``x`` with itself rolled by one: ``(x_mixed, y2, w)`` where the loss
    is ``w * loss(y) + (1 - w) * loss(y2)``. Fixed shapes, no host sync."""
    alpha = mix_weight_map(row, x.shape[-1]).to(x.dtype)
    x2 = torch.roll(x, 1, 0)
    mixed = alpha * x + (1.0 - alpha) * x2
    return mixed, torch.roll(y, 1, 0), alpha.mean()
