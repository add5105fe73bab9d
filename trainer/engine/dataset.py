"""A run's data: which cells train and which validate, their patches, labels and mean image.

Training cells: the patch set's labelled cells, FlagLimit-sampled when ``flag_limit`` is set
(``trainer.formats.sampling.flaglimit_split``). Validation cells: the sampled validation share
(80/20, stratified, same seed) or, when ``val_patchset`` is given, every labelled cell of that
patch set whose class the model has (the CRC data's own validation split); the training side
then uses the whole sample (``val_fraction`` is not applied).

Without a FlagLimit every labelled cell is used, with the same per-class split rule as the
sampler (class c shuffled by ``default_rng([seed, c])``, the first ``n - round(0.8 n)`` to
validation) and no class excluded.

The split is saved in the run folder (``split.npz``), so evaluation and the robustness test
later use exactly the cells this run validated on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.formats.config import RunConfig
from trainer.formats.patchset import PatchSet, PatchSetError, load_patchset

SPLIT_FILE = "split.npz"


@dataclass
class RunData:
    classes: list[str]  # the model's classes, in model order
    excluded_classes: list[str]
    train_idx: np.ndarray  # rows of the training patch set
    val_idx: np.ndarray  # rows of the validation patch set (train patch set without one)
    train_u8: np.ndarray  # (n, 40, 40, 3) uint8, contiguous
    train_y: np.ndarray  # (n,) int64 model classes
    val_u8: np.ndarray
    val_y: np.ndarray
    fov_px: float
    patchset: PatchSet
    val_patchset: PatchSet | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def val_source(self) -> PatchSet:
        return self.val_patchset if self.val_patchset is not None else self.patchset


def _full_split(labels: np.ndarray, num_classes: int, seed: int, val_fraction: float):
    """Every labelled cell, split per class with the sampler's rule (no cap, no exclusion)."""
    train, val, kept = [], [], []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        kept.append(c)
        shuffled = np.random.default_rng([seed, c]).permutation(members)
        n_train = max(int(np.floor((1.0 - val_fraction) * members.size + 0.5)), 1)
        val.append(shuffled[: members.size - n_train])
        train.append(shuffled[members.size - n_train:])

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)

    return cat(train), cat(val), kept


def _load(path: str, what: str) -> PatchSet:
    if not Path(path).exists():
        raise PatchSetError(f"{path}: {what} not found")
    return load_patchset(path, mmap=True)


def _gather(patches: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` (sorted) of a memmapped array as one contiguous in-memory array."""
    return np.ascontiguousarray(patches[np.asarray(idx, dtype=np.int64)])


def prepare_data(cfg: RunConfig) -> RunData:
    from trainer.formats.sampling import flaglimit_split

    ps = _load(cfg.patchset, "patch set")
    labels = np.asarray(ps.labels, dtype=np.int64)
    k_all = len(ps.classes)
    notes: list[str] = []
    if not (labels >= 0).any():
        raise PatchSetError(f"{ps.path}: no labelled cells to train on")
    val_fraction = 0.0 if cfg.val_patchset else cfg.val_fraction
    if cfg.flag_limit is not None:
        split = flaglimit_split(labels, cfg.flag_limit, seed=cfg.seed, val_fraction=val_fraction,
                                num_classes=k_all)
        kept, train_idx, val_idx = split.kept_classes, split.train_idx, split.val_idx
        if split.excluded_classes:
            names = [ps.classes[c] for c in split.excluded_classes]
            notes.append(f"FlagLimit {cfg.flag_limit}: FlagMin {split.flag_min}; classes with "
                         f"fewer cells excluded: {', '.join(names)}")
    else:
        train_idx, val_idx, kept = _full_split(labels, k_all, cfg.seed, val_fraction)
    if len(kept) < 2:
        raise PatchSetError(f"{ps.path}: training needs at least two classes with cells; "
                            f"kept: {[ps.classes[c] for c in kept]}")
    classes = [ps.classes[c] for c in kept]
    excluded = [ps.classes[c] for c in range(k_all) if c not in kept]
    class_map = np.full(k_all, -1, dtype=np.int64)
    class_map[kept] = np.arange(len(kept))
    train_y = class_map[labels[train_idx]]

    val_ps = None
    if cfg.val_patchset:
        val_ps = _load(cfg.val_patchset, "validation patch set")
        by_name = {name: i for i, name in enumerate(classes)}
        vmap = np.array([by_name.get(name, -1) for name in val_ps.classes] + [-1], np.int64)
        vlabels = np.asarray(val_ps.labels, dtype=np.int64)
        vmodel = vmap[vlabels]  # -1 (unlabelled) indexes the trailing -1
        val_idx = np.flatnonzero(vmodel >= 0).astype(np.int64)
        dropped = int(((vlabels >= 0) & (vmodel < 0)).sum())
        if dropped:
            notes.append(f"validation patch set: {dropped} labelled cells of classes the model "
                         "does not have were left out")
        val_y = vmodel[val_idx]
        val_u8 = _gather(val_ps.patches, val_idx)
    else:
        val_y = class_map[labels[val_idx]]
        val_u8 = _gather(ps.patches, val_idx)
    if len(val_idx) == 0:
        raise PatchSetError(f"{val_ps.path if val_ps else ps.path}: no validation cells "
                            "(too few labelled cells per class, or no shared classes)")
    return RunData(
        classes=classes, excluded_classes=excluded, train_idx=train_idx, val_idx=val_idx,
        train_u8=_gather(ps.patches, train_idx), train_y=train_y, val_u8=val_u8, val_y=val_y,
        fov_px=float(ps.fov_px), patchset=ps, val_patchset=val_ps, notes=notes,
    )


def save_split(run_dir: Path, data: RunData) -> Path:
    path = run_dir / SPLIT_FILE
    tmp = run_dir / (SPLIT_FILE + ".tmp.npz")
    # prepare_data loads both patch sets from their folders, so both have a path
    assert data.val_source.path is not None and data.patchset.path is not None
    np.savez(tmp, train_idx=data.train_idx, val_idx=data.val_idx,
             val_patchset=np.array(str(Path(data.val_source.path).resolve())),
             patchset=np.array(str(Path(data.patchset.path).resolve())))
    tmp.replace(path)
    return path


def load_split(run_dir: Path) -> dict:
    with np.load(run_dir / SPLIT_FILE) as z:
        return {"train_idx": z["train_idx"], "val_idx": z["val_idx"],
                "val_patchset": str(z["val_patchset"]), "patchset": str(z["patchset"])}
