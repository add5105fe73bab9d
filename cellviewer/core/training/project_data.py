"""The label counts a training run is chosen from: labelled cells per image and class."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class ProjectCounts:
    """Labelled cells per image and class (``counts[i, c]``: image i, class c) of a project."""

    image_ids: list[int]
    image_names: list[str]
    class_ids: list[int]
    class_names: list[str]
    class_colors: list[str]
    counts: np.ndarray  # (n_images, n_classes) int64

    @classmethod
    def empty(cls) -> ProjectCounts:
        return cls([], [], [], [], [], np.zeros((0, 0), np.int64))

    @classmethod
    def from_store(cls, store) -> ProjectCounts:
        """The counts of a :class:`~cellviewer.core.store.ProjectStore`."""
        images = store.images()
        classes = store.classes()
        col = {c.id: j for j, c in enumerate(classes)}
        counts = np.zeros((len(images), len(classes)), dtype=np.int64)
        for i, img in enumerate(images):
            cells = store.cell_arrays(img.id)
            ids = np.asarray(cells.class_id, dtype=np.int64)
            ids = ids[(ids >= 0) & ~cells.proposed]  # proposals train nothing until accepted
            if ids.size:
                vals, n = np.unique(ids, return_counts=True)
                for v, k in zip(vals, n, strict=True):
                    if int(v) in col:
                        counts[i, col[int(v)]] = k
        return cls(
            image_ids=[img.id for img in images],
            image_names=[Path(img.path).name for img in images],
            class_ids=[c.id for c in classes], class_names=[c.name for c in classes],
            class_colors=[c.color for c in classes], counts=counts,
        )

    def per_class(self, image_rows: list[int], class_cols: list[int]) -> np.ndarray:
        """Labelled cells per chosen class (in ``class_cols`` order) of the chosen images."""
        if not image_rows or not class_cols:
            return np.zeros(len(class_cols), np.int64)
        return self.counts[np.ix_(image_rows, class_cols)].sum(axis=0)

    def labels_for(self, image_rows: list[int], class_cols: list[int]) -> np.ndarray:
        """A label array with the same per-class counts as the chosen cells (for the sampling
        report; only counts matter there). Class k of the result is ``class_cols[k]``."""
        return np.repeat(np.arange(len(class_cols)), self.per_class(image_rows, class_cols))


def read_project(project_path: str | os.PathLike, read: Callable[[Any], T]) -> T:
    """``read(store)`` on a read-only connection of its own to the project: safe in a worker
    thread (SQLite connections belong to the thread that made them)."""
    from cellviewer.core.store import ProjectStore

    store = ProjectStore.open(Path(project_path), readonly=True)
    try:
        return read(store)
    finally:
        store.close()
