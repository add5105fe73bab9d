"""Tiny synthetic patch sets and run settings shared by the engine tests (not a test module).

Each class has a dominant colour channel plus noise, so a small model learns it in an epoch
or two and a broken pipeline (labels shuffled, whitening wrong) shows as low accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.formats.patchset import PatchSet

# A CNN with the study's layout but tiny widths: trains in about a second per epoch on 1 thread.
TINY_CNN_ARGS = {"channels": [8, 8, 16, 16]}


def make_patchset(folder: Path, n_per_class: int = 20, classes=("red", "green", "blue"),
                  seed: int = 0, crop_size: int | None = None) -> Path:
    rng = np.random.default_rng(seed)
    k = len(classes)
    n = n_per_class * k
    labels = np.repeat(np.arange(k), n_per_class).astype(np.int16)
    size = crop_size or 40
    base = rng.integers(30, 90, size=(n, size, size, 3))
    base[np.arange(n), :, :, labels] += 120
    crops = np.clip(base + rng.integers(0, 40, size=base.shape), 0, 255).astype(np.uint8)
    if crop_size and crop_size != 40:
        from trainer.formats.patchset import resize_to_patch

        patches = np.stack([resize_to_patch(c) for c in crops])
    else:
        patches = crops
    ps = PatchSet(
        patches=patches, labels=labels, classes=list(classes),
        cell_ids=[f"cell{i}" for i in range(n)], sources=["synthetic.png"] * n,
        xy=rng.uniform(20, 480, size=(n, 2)), padded=np.zeros(n, dtype=bool),
        fov_px=float(size), source_crops=crops if crop_size else None,
    )
    ps.save(folder)
    return folder


def tiny_config(patchset: Path, out_dir: Path, **changes):
    from trainer.formats.config import RunConfig

    cfg = RunConfig(patchset=str(patchset), out_dir=str(out_dir), model="cnn",
                    model_args=dict(TINY_CNN_ARGS), epochs=2, batch_size=32, num_threads=1,
                    heartbeat_s=0.05)
    return cfg.replace(**changes)
