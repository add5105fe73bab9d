"""Stronger colour augmentation for H&E: random stain jitter in HED space (Tellez et al. 2018).

The study's colour ops are six fixed gamma/HSV changes; stain and scanner differences between
tiles are continuous and act on the stains, so the field's augmentation perturbs each stain's
concentration: optical density ``OD = -ln(I)`` is projected on the haematoxylin, eosin and DAB
stain vectors of Ruifrok & Johnston (scikit-image's ``rgb_from_hed``), each stain ``s`` becomes
``s * alpha + beta`` with ``alpha ~ U(1 - S, 1 + S)`` and ``beta ~ U(-S, S)`` per sample and
stain, and the result goes back to RGB. ``S`` is ``--color-jitter`` (0.05 is Tellez's "light"
setting).

As for mixing (``trainer.data.mixing``), the draws are a per-epoch table made on the host from
``(seed, epoch)``: (entries, 6) float32 rows ``(alpha_h, alpha_e, alpha_d, beta_h, beta_e,
beta_d)``, one per entry of the augmented plan, read on the device by the batch's entries, so
the step stays capturable, a resumed run sees the same draws, and under DDP each sample is
jittered as in one process.
"""

from __future__ import annotations

import numpy as np
import torch

JITTER_SEED_SALT = 4099
#: stain vectors (rows: haematoxylin, eosin, DAB) in OD-RGB: scikit-image's ``rgb_from_hed``
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29],
                         [0.07, 0.99, 0.11],
                         [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
MIN_INTENSITY = 1.0 / 255.0  # the darkest 8-bit value: keeps ln(0) out of black pixels


def jitter_table(seed: int, epoch: int, n: int, strength: float) -> np.ndarray:
    """(n, 6) float32 per-entry stain scales and shifts for ``epoch``."""
    rng = np.random.default_rng([seed, JITTER_SEED_SALT, epoch])
    out = np.empty((n, 6), dtype=np.float32)
    out[:, :3] = rng.uniform(1.0 - strength, 1.0 + strength, (n, 3))
    out[:, 3:] = rng.uniform(-strength, strength, (n, 3))
    return out


def stain_matrices(device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(hed_from_rgb, rgb_from_hed) float32 on ``device``; make them before capturing a CUDA
    graph (a copy from the host cannot be captured)."""
    return (torch.tensor(HED_FROM_RGB, dtype=torch.float32, device=device),
            torch.tensor(RGB_FROM_HED, dtype=torch.float32, device=device))


def stain_jitter(x: torch.Tensor, params: torch.Tensor,
                 matrices: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> jittered RGB in [0, 1]; ``params`` (B, 6) rows of
    :func:`jitter_table`; ``matrices`` from :func:`stain_matrices` (made here when None)."""
    hed_from_rgb, rgb_from_hed = matrices if matrices is not None else stain_matrices(x.device)
    od = -torch.log(torch.clamp(x, min=MIN_INTENSITY))
    stains = torch.einsum("bchw,cd->bdhw", od, hed_from_rgb)
    stains = stains * params[:, :3, None, None] + params[:, 3:, None, None]
    od2 = torch.einsum("bdhw,dc->bchw", stains, rgb_from_hed)
    return torch.clamp(torch.exp(-od2), 0.0, 1.0)
