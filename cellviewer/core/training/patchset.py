"""Write a patch set in the trainer's format from a project: chosen images and classes.

The patches come from :func:`cellviewer.core.cells.crop.crop_patches`, so they follow the trainer's
cropping rule to the pixel (window ``floor(x) - S // 2``, reflect padding, antialiased resize), and
a model trained on this set sees at prediction time exactly what it saw in training.

Choices:

- ``class_names`` picks the classes *and their order* in the patch set (the model's output
  order); ``None`` takes every class of the project in the project's order. Cells of other
  classes are left out; unlabelled cells only with ``include_unlabelled`` (label -1, for a
  prediction set).
- A detector's proposals (cells not yet accepted, ``CellArrays.proposed``) never enter a patch
  set, whatever their class: a person has not verified them yet.
- ``image_ids`` picks images (``None``: all); images with no chosen cell are not opened.
- Cells are in image order, then in the order they were added to the project (a CSV's row
  order). Each cell's ``source`` in ``cells.csv`` is its image's absolute path; ``meta.json``
  also records the project file and the image ids.
- Nothing is written unless every image opens and every crop succeeds (``PatchSet.save`` writes
  into a temporary folder and renames it), so a broken or moved image leaves no half patch set.
  Every chosen image is checked against the project's record before the first crop
  (``cellviewer.core.sources.identity``: its content fingerprint, and its size once opened), so
  a replaced file is refused with an ``ImageChangedError`` naming it and what changed.
- Large sets are assembled in a memory-mapped temporary file beside the output, not in RAM.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellviewer.core.cells.crop import crop_patches, window_size
from cellviewer.core.sources.identity import check_image, open_recorded_image
from trainer.formats.patchset import PATCH_SIZE, PatchSet, load_patchset

# Above this many bytes of patches (and source crops) the arrays are memory-mapped files.
IN_MEMORY_LIMIT = 512 << 20


@dataclass
class _Selection:
    image: Any  # ImageRecord
    ids: np.ndarray
    xy: np.ndarray
    labels: np.ndarray


def _chosen_classes(store, class_names: Sequence[str] | None) -> tuple[list[str], dict[int, int]]:
    records = sorted(store.classes(), key=lambda c: (c.order, c.id))
    if class_names is None:
        chosen = records
    else:
        by_name = {c.name: c for c in records}
        missing = [n for n in class_names if n not in by_name]
        if missing:
            raise ValueError(
                f"{store.path}: the project has no class {missing} "
                f"(its classes: {[c.name for c in records]})"
            )
        chosen = [by_name[n] for n in dict.fromkeys(class_names)]  # keep order, drop repeats
    return [c.name for c in chosen], {c.id: k for k, c in enumerate(chosen)}


def _chosen_images(store, image_ids: Sequence[int] | None) -> list:
    images = store.images()
    if image_ids is None:
        return images
    by_id = {im.id: im for im in images}
    missing = [i for i in image_ids if i not in by_id]
    if missing:
        raise ValueError(f"{store.path}: the project has no image with id {missing}")
    return [by_id[i] for i in dict.fromkeys(image_ids)]


def _select(store, images: list, class_index: dict[int, int], include_unlabelled: bool,
            only_ids: Collection[str] | None = None):
    selections = []
    for image in images:
        cells = store.cell_arrays(image.id)
        # The store hands cells out in its index's (spatial) order; the patch set keeps the
        # order they were added in (a CSV's row order), which is stable across edits.
        rows = getattr(cells, "rows", None)
        order = np.argsort(rows, kind="stable") if rows is not None else np.arange(len(cells))
        class_id = np.asarray(cells.class_id, dtype=np.int64)[order]
        labels = np.full(len(class_id), -2, dtype=np.int64)  # -2: not chosen
        for cid, k in class_index.items():
            labels[class_id == cid] = k
        if include_unlabelled:
            labels[class_id < 0] = -1
        proposed = getattr(cells, "proposed", None)
        if proposed is not None:  # a detector's proposals train nothing until accepted
            labels[np.asarray(proposed, dtype=bool)[order]] = -2
        if only_ids is not None:  # e.g. one side of a split column (training/split.py)
            wanted = only_ids if isinstance(only_ids, set | frozenset) else set(only_ids)
            ids = np.asarray(cells.ids, dtype=object)[order]
            labels[~np.fromiter((str(i) in wanted for i in ids), bool, len(ids))] = -2
        keep = order[labels >= -1]
        labels = labels[labels >= -1]
        if len(keep):
            selections.append(_Selection(
                image=image, ids=np.asarray(cells.ids, dtype=object)[keep],
                xy=np.asarray(cells.xy, dtype=np.float64).reshape(-1, 2)[keep],
                labels=labels,
            ))
    return selections


def _allocate(shape: tuple[int, ...], partial: Path, parts: list[Path]) -> np.ndarray:
    if int(np.prod(shape)) <= IN_MEMORY_LIMIT:
        return np.empty(shape, np.uint8)
    parts.append(partial)
    return np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)


def write_project_patchset(
    store,
    out_folder: str | os.PathLike,
    image_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    fov_px: float = PATCH_SIZE,
    keep_source_crops: bool = False,
    *,
    include_unlabelled: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    only_ids: Collection[str] | None = None,
) -> PatchSet:
    """Crop the chosen cells of ``store`` (a ``ProjectStore``) and save them as a patch set in
    ``out_folder``; returns it loaded back (memory-mapped). ``progress(done, total)`` is called
    after each image. Raises ValueError for unknown images/classes or when no cell is chosen,
    ImageOpenError for an image that cannot be read and ImageChangedError (a subclass) for one
    whose file was replaced since it was added (nothing is written then). ``only_ids``: only
    these cells (one side of a split column)."""
    out_folder = Path(out_folder)
    size = window_size(fov_px)
    classes, class_index = _chosen_classes(store, class_names)
    images = _chosen_images(store, image_ids)
    selections = _select(store, images, class_index, include_unlabelled, only_ids)
    n = sum(len(s.ids) for s in selections)
    if n == 0:
        raise ValueError(
            f"{store.path}: no cell of the chosen images has a chosen class {classes}"
            + (" (or is unlabelled)" if include_unlabelled else "")
        )

    for sel in selections:  # all of them before the first crop: a replaced file writes nothing
        check_image(sel.image)
    out_folder.parent.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    try:
        patches = _allocate((n, PATCH_SIZE, PATCH_SIZE, 3),
                            out_folder.with_name(f".{out_folder.name}.patches.partial"), parts)
        crops = None
        if keep_source_crops and size != PATCH_SIZE:
            crops = _allocate((n, size, size, 3),
                              out_folder.with_name(f".{out_folder.name}.crops.partial"), parts)
        padded = np.zeros(n, dtype=bool)
        start = 0
        for done, sel in enumerate(selections, 1):
            end = start + len(sel.ids)
            with open_recorded_image(sel.image) as source:
                res = crop_patches(source, sel.xy, fov_px, keep_source_crops=crops is not None,
                                   workers=workers)
            patches[start:end] = res.patches
            if crops is not None:
                crops[start:end] = res.source_crops
            padded[start:end] = res.padded
            start = end
            if progress is not None:
                progress(done, len(selections))

        patchset = PatchSet(
            patches=patches,
            labels=np.concatenate([s.labels for s in selections]).astype(np.int16),
            classes=classes,
            cell_ids=[str(i) for s in selections for i in s.ids],
            sources=[str(s.image.path) for s in selections for _ in range(len(s.ids))],
            xy=np.concatenate([s.xy for s in selections]),
            padded=padded,
            fov_px=float(fov_px),
            source_crops=(patches if size == PATCH_SIZE else crops) if keep_source_crops else None,
            extra_meta={
                "project": str(getattr(store, "path", "")),
                "image_ids": [int(s.image.id) for s in selections],
                "window_px": size,
            },
        )
        patchset.save(out_folder)
        del patches, crops, patchset
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return load_patchset(out_folder)
