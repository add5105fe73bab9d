"""A dataset's own train/validation split, kept as a cell metadata column (``split``).

Datasets such as the CRC release come with their split (``train`` / ``validation``); an
imported points CSV keeps such a column in each cell's metadata. Choosing it in the training
dialog replaces the random 80/20 split: the cells whose value names validation
(:data:`VALIDATION_VALUES`) form the validation patch set (the trainer's ``val_patchset``),
those marked as test (:data:`HELD_OUT_VALUES`) are left out of the run altogether, and every
other labelled cell (``train``, or no value) is the training side, which the FlagLimit samples
as usual.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

#: values of the column that put a cell on the validation side (case-insensitive)
VALIDATION_VALUES = frozenset({"val", "valid", "validation", "dev"})
#: values that keep a cell out of the run (kept for a later, separate test)
HELD_OUT_VALUES = frozenset({"test", "holdout", "held-out", "heldout"})
#: a column with more distinct values than this is not a split
MAX_SPLIT_VALUES = 8
TRAIN, VAL, OUT = 0, 1, 2


def side_of(value: object) -> int:
    """TRAIN, VAL or OUT for a cell's value of the split column."""
    text = str(value).strip().lower() if value is not None else ""
    if text in VALIDATION_VALUES:
        return VAL
    if text in HELD_OUT_VALUES:
        return OUT
    return TRAIN


@dataclass(frozen=True)
class SplitCounts:
    """Labelled cells per image and class on each side of one split column, aligned with a
    :class:`~cellviewer.core.training.project_data.ProjectCounts` (same images and classes)."""

    column: str
    values: dict[str, int]  # each value of the column and its number of labelled cells
    train: np.ndarray  # (n_images, n_classes) int64
    val: np.ndarray

    def describe(self) -> str:
        parts = ", ".join(f"{v or '(none)'}: {n:,}" for v, n in sorted(self.values.items()))
        return f"{self.column} ({parts})"


def read_splits(store: Any, image_ids: list[int], class_ids: list[int]) -> dict[str, SplitCounts]:
    """The project's split candidates: metadata columns of labelled cells with a validation
    value and few distinct values, with their counts. Reads every cell's metadata: call it
    in a worker."""
    table = store.cell_table(image_ids)
    row_of = {int(i): r for r, i in enumerate(image_ids)}
    col_of = {int(c): k for k, c in enumerate(class_ids)}
    proposed = table["proposed"]  # a detector's proposals train nothing until accepted
    labelled = [i for i, c in enumerate(table["class_id"])
                if int(c) in col_of and not proposed[i]]
    values: dict[str, Counter] = {}
    for i in labelled:
        for key, value in (table["metadata"][i] or {}).items():
            values.setdefault(str(key), Counter())[str(value)] += 1
    out: dict[str, SplitCounts] = {}
    for column, seen in values.items():
        if len(seen) > MAX_SPLIT_VALUES or not any(side_of(v) == VAL for v in seen):
            continue
        shape = (len(image_ids), len(class_ids))
        train, val = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        for i in labelled:
            side = side_of((table["metadata"][i] or {}).get(column))
            target = train if side == TRAIN else val if side == VAL else None
            if target is not None:
                target[row_of[int(table["image_id"][i])], col_of[int(table["class_id"][i])]] += 1
        out[column] = SplitCounts(column, dict(seen), train, val)
    return out


def split_ids(store: Any, image_ids: list[int], column: str) -> tuple[set[str], set[str]]:
    """The ids of the training and of the validation cells of ``image_ids`` by ``column``."""
    table = store.cell_table(image_ids)
    train: set[str] = set()
    val: set[str] = set()
    for cid, meta in zip(table["ids"], table["metadata"], strict=True):
        side = side_of((meta or {}).get(column))
        if side == TRAIN:
            train.add(str(cid))
        elif side == VAL:
            val.add(str(cid))
    return train, val
