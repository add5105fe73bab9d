"""Batched inference shared by validation, evaluation, the robustness test and the predictor:
uint8 patches -> [0, 1] (-> whitened) -> model -> logits (and embeddings), in batches, under
``torch.inference_mode`` and the run's autocast, results kept on the device until the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from trainer.engine.device import autocast

if TYPE_CHECKING:
    from trainer.models.layers import CellClassifier


def model_input(patches_u8: torch.Tensor, mean: torch.Tensor | None) -> torch.Tensor:
    """(B, 40, 40, 3) uint8 on the device -> the model's input (B, 3, 40, 40) float32."""
    from trainer.data.augment import to_float_chw

    x = to_float_chw(patches_u8)
    return x - mean if mean is not None else x


def _chunk(inputs: np.ndarray | torch.Tensor, start: int, stop: int,
           device: torch.device) -> torch.Tensor:
    part = inputs[start:stop]
    if isinstance(part, np.ndarray):
        arr = np.ascontiguousarray(part)
        if not arr.flags.writeable:  # a read-only memmap: torch wants writable memory
            arr = arr.copy()
        part = torch.from_numpy(arr)
    return part.to(device, non_blocking=True)


@torch.inference_mode()
def forward_batches(
    model: CellClassifier,
    inputs: np.ndarray | torch.Tensor,
    device: torch.device,
    *,
    mean: torch.Tensor | None = None,
    amp_dtype: torch.dtype | None = None,
    batch_size: int = 1024,
    kind: str = "patches",
    want_features: bool = False,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits (N, K) float32 on ``device`` (and embeddings (N, D) with ``want_features``).

    ``kind="patches"``: ``inputs`` are (N, 40, 40, 3) uint8 (NumPy, memmap or tensor);
    ``kind="features"``: cached backbone features (N, D), only the head runs.
    The model must already be in eval mode on ``device``."""
    n = len(inputs)
    logits, feats = [], []
    for start in range(0, n, batch_size):
        chunk = _chunk(inputs, start, min(start + batch_size, n), device)
        with autocast(device, amp_dtype):
            if kind == "features":
                out = model.forward_head(chunk.float())
            else:
                x = model_input(chunk, mean)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if want_features:
                    f = model.forward_features(x)
                    feats.append(f.float())
                    out = model.forward_head(f)
                else:
                    out = model(x)
        logits.append(out.float())
    if not logits:
        return torch.zeros(0, 0, device=device), None
    return torch.cat(logits), (torch.cat(feats) if want_features else None)


@torch.inference_mode()
def features_of(
    model: CellClassifier,
    inputs: np.ndarray | torch.Tensor,
    device: torch.device,
    *,
    plan: torch.Tensor | None = None,
    mean: torch.Tensor | None = None,
    amp_dtype: torch.dtype | None = None,
    batch_size: int = 256,
    progress=None,
) -> torch.Tensor:
    """Embeddings (M, D) float32 of every entry of ``plan`` (augmented rows of ``inputs``), or
    of every patch of ``inputs`` when ``plan`` is None: what linear probing caches."""
    from trainer.data.augment import augment_batch

    m = int(plan.shape[0]) if plan is not None else len(inputs)
    out: torch.Tensor | None = None
    for start in range(0, m, batch_size):
        stop = min(start + batch_size, m)
        if plan is not None:
            rows = plan[start:stop]
            x = augment_batch(inputs[rows[:, 0]], rows[:, 1], rows[:, 2])
            if mean is not None:
                x = x - mean
        else:
            x = model_input(_chunk(inputs, start, stop, device), mean)
        with autocast(device, amp_dtype):
            f = model.forward_features(x).float()
        if out is None:
            out = torch.empty(m, f.shape[1], dtype=torch.float32, device=device)
        out[start:stop] = f
        if progress is not None:
            progress(stop, m)
    assert out is not None
    return out
