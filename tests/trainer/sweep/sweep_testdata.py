"""A tiny labelled patch set with classes of unequal size (not a test module): each class has
a dominant colour channel plus noise, so a tiny model learns it in an epoch or two, and the
sizes (40, 30, 12) make FlagLimits fold and FlagMin exclude a class:

- FlagLimit 16 keeps 16, 16, 12 cells;
- FlagLimit 64 (FlagMin 4) keeps every cell: the same run as "all";
- FlagLimit 256 and 512 (FlagMin 13 and 26) exclude "blue": one run, named 256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.formats.patchset import PatchSet

COUNTS = {"red": 40, "green": 30, "blue": 12}
TINY_CNN = {"channels": [4, 4, 8, 8]}
TINY_MLP = {"hidden": [16]}


def make_patchset(folder: Path, seed: int = 0, scale: float = 1.0) -> Path:
    rng = np.random.default_rng(seed)
    counts = [max(2, int(round(n * scale))) for n in COUNTS.values()]
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int16)
    n = len(labels)
    base = rng.integers(30, 90, size=(n, 40, 40, 3))
    base[np.arange(n), :, :, labels] += 120
    patches = np.clip(base + rng.integers(0, 40, size=base.shape), 0, 255).astype(np.uint8)
    PatchSet(patches=patches, labels=labels, classes=list(COUNTS),
             cell_ids=[f"cell{i}" for i in range(n)], sources=["synthetic.png"] * n,
             xy=rng.uniform(20, 480, size=(n, 2)), padded=np.zeros(n, dtype=bool),
             fov_px=40.0).save(folder)
    return folder


def spec_dict(train: Path, test: Path | None, **changes) -> dict:
    spec = {
        "patchset": str(train),
        "models": [{"model": "cnn", "model_args": TINY_CNN},
                   {"model": "mlp", "model_args": TINY_MLP}],
        "flag_limits": [16, 64],
        "seeds": [1, 2],
        "train": {"epochs": 2, "batch_size": 32, "num_threads": 1, "device": "cpu",
                  "heartbeat_s": 0.05},
        "sigmas": [0.4, 1.6],
        "latency_runs": 5,
    }
    if test is not None:
        spec["test_patchset"] = str(test)
    spec.update(changes)
    return spec
