"""Build a patch set from a folder of images and a points CSV.

A points CSV has a header and one row per cell: ``image,x,y,class`` (the layout of
``crc/points.csv``, which adds a ``split`` column) or ``image,x,y,class_id`` with integer ids
that ``class_names`` turns into names (``chula-rbc-12/points.csv``). ``image`` names a file
relative to the image folder; x is the column and y the row, in 0-based pixels, continuous.

Everything is checked before anything is written, and bad input raises :class:`PatchSetError`
naming the file and line: a missing column, a row with the wrong number of fields, an empty
or unknown class, a coordinate that is not a finite number or lies outside its image (whose
extent is [0, W] x [0, H]), an image that does not exist or cannot be decoded. The output
folder is written atomically by ``PatchSet.save``.

Each image is read once and all its cells are cropped together (one vectorised gather for
the windows inside the image; ``crop_window``'s reflect padding for the others, which are
counted in ``n_padded`` and flagged, never dropped).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.formats.patchset import (
    PATCH_SIZE,
    PatchSet,
    PatchSetError,
    crop_window,
    resize_to_patch,
)

CHULA_RBC12_CLASSES = [
    "normal", "macrocyte", "microcyte", "spherocyte", "target cell", "stomatocyte",
    "ovalocyte", "teardrop", "burr cell", "schistocyte", "uncategorised", "hypochromia",
    "elliptocyte",
]
# Class lists known by name (for the CLI's --class-names).
KNOWN_CLASS_LISTS = {"chula-rbc-12": CHULA_RBC12_CLASSES}


@dataclass
class PointsTable:
    """The checked rows of a points CSV (before the images are read)."""

    path: Path
    images: list[str]  # per row, as written in the CSV
    xy: np.ndarray  # (N, 2) float64
    labels: np.ndarray  # (N,) int16 index into classes
    classes: list[str]
    lines: np.ndarray  # (N,) int, the CSV line of each row (1 = header)


def read_points_csv(
    csv_path: str | os.PathLike,
    *,
    split: str | None = None,
    classes: list[str] | None = None,
    class_column: str | None = None,
    class_names: list[str] | None = None,
) -> PointsTable:
    """Read and check a points CSV with the app's reader (``trainer.formats.tables``: every
    table the app imports, any delimiter and encoding; see the module doc). ``split`` keeps
    only the rows whose ``split`` column equals it. ``class_column`` picks the class column
    (default: the one the reader recognises, ``class`` or else ``class_id``).
    ``class_names``: names of the integer ids in that column (a value may also be one of these
    names). ``classes``: the patch set's class list, in order (default: ``class_names``, else
    the sorted distinct names); a class outside it is an error."""
    from trainer.formats.cell_rows import CellFileError
    from trainer.formats.tables import read_table

    path = Path(csv_path)
    try:
        parsed = read_table(path, class_names=class_names, label_column=class_column)
    except CellFileError as exc:
        raise PatchSetError(str(exc)) from None
    if parsed.units != "px":
        raise PatchSetError(f"{path}: coordinates in µm ({parsed.format}); a patch set needs "
                            f"pixels (import the file into a project, which knows each "
                            f"image's pixel size)")
    if parsed.rows and parsed.rows[0].image is None:
        raise PatchSetError(f"{path}: no image column ({parsed.format}); name each row's image")
    if split is not None and "split" not in [h.lower() for h in parsed.header]:
        raise PatchSetError(f"{path}, line 1: missing column(s) split (the header has: "
                            f"{', '.join(parsed.header)})")
    allowed = set(classes) if classes is not None else None
    images, xs, ys, names, lines, splits_seen = [], [], [], [], [], set()
    for row in parsed.rows:
        line = int(row.where.split()[-1])
        if split is not None:
            value = next((v for k, v in row.metadata.items() if k.lower() == "split"), "")
            s = value.strip()
            splits_seen.add(s)
            if s != split:
                continue
        if not row.label:
            raise PatchSetError(f"{path}, line {line}: empty class")
        if allowed is not None and row.label not in allowed:
            raise PatchSetError(
                f"{path}, line {line}: class {row.label!r} is not one of {sorted(allowed)}")
        images.append(str(row.image))
        xs.append(row.x)
        ys.append(row.y)
        names.append(row.label)
        lines.append(line)
    if not images:
        where = f" with split {split!r} (splits present: {sorted(splits_seen)})" if split else ""
        raise PatchSetError(f"{path}: no cells{where}")
    if classes is None:
        classes = list(class_names) if class_names is not None else sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return PointsTable(
        path=path, images=images, xy=np.column_stack([xs, ys]).astype(np.float64),
        labels=np.array([index[n] for n in names], dtype=np.int16), classes=list(classes),
        lines=np.array(lines, dtype=np.int64),
    )


def crop_cells(image: np.ndarray, xy: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``size`` windows around the points ``xy`` (N, 2) of one (H, W, 3) image, with
    ``crop_window``'s origin and padding rule. Returns crops (N, size, size, 3) and padded (N,).
    Windows fully inside the image are gathered in one vectorised copy."""
    h, w = image.shape[:2]
    n = len(xy)
    crops = np.empty((n, size, size) + image.shape[2:], dtype=image.dtype)
    x0 = np.floor(xy[:, 0]).astype(np.int64) - size // 2
    y0 = np.floor(xy[:, 1]).astype(np.int64) - size // 2
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + size <= w) & (y0 + size <= h)
    if inside.any():
        # (H-s+1, W-s+1, C, s, s) view of every window; fancy indexing copies only the chosen
        windows = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))
        crops[inside] = np.moveaxis(windows[y0[inside], x0[inside]], 1, -1)
    for i in np.flatnonzero(~inside):
        crops[i], _ = crop_window(image, float(xy[i, 0]), float(xy[i, 1]), size)
    return crops, ~inside


def read_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; PatchSetError naming the file if it cannot be."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise PatchSetError(f"{path}: cannot read the image ({exc})") from exc


def build_from_points_csv(
    csv_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    out_folder: str | os.PathLike | None,
    fov_px: float = PATCH_SIZE,
    *,
    split: str | None = None,
    classes: list[str] | None = None,
    keep_source_crops: bool = False,
    class_column: str | None = None,
    class_names: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PatchSet:
    """Crop every cell of a points CSV from its image into a patch set saved at ``out_folder``
    (None: return it without saving). ``fov_px``: the field of view in image pixels (rounded
    to whole pixels), resized to 40x40 when it is not 40. ``progress(done, total)`` is called
    after each image. See :func:`read_points_csv` for the other arguments."""
    table = read_points_csv(csv_path, split=split, classes=classes, class_column=class_column,
                            class_names=class_names)
    size = int(round(fov_px))
    if size < 1:
        raise PatchSetError(f"field of view {fov_px} px is too small")
    image_dir = Path(image_dir)
    n = len(table.images)
    by_image: dict[str, list[int]] = {}
    for i, name in enumerate(table.images):
        by_image.setdefault(name, []).append(i)
    for name, rows in by_image.items():  # every image must exist before any is decoded
        if not (image_dir / name).is_file():
            raise PatchSetError(
                f"{table.path}, line {table.lines[rows[0]]}: image {name!r} not found in "
                f"{image_dir}")
    patches = np.empty((n, PATCH_SIZE, PATCH_SIZE, 3), dtype=np.uint8)
    sources = np.empty((n, size, size, 3), dtype=np.uint8) if keep_source_crops else None
    padded = np.zeros(n, dtype=bool)
    for done, (name, rows) in enumerate(by_image.items(), start=1):
        rows_a = np.asarray(rows)
        image = read_rgb(image_dir / name)
        h, w = image.shape[:2]
        xy = table.xy[rows_a]
        # continuous coordinates: pixel i covers [i, i + 1), the image [0, W] x [0, H]; crc's
        # points include x = W exactly (1-based MATLAB coordinates of the last pixel)
        outside = (xy[:, 0] < 0) | (xy[:, 1] < 0) | (xy[:, 0] > w) | (xy[:, 1] > h)
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            raise PatchSetError(
                f"{table.path}, line {table.lines[rows_a[k]]}: point ({xy[k, 0]}, {xy[k, 1]}) "
                f"is outside {name} ({w}x{h})")
        crops, pad = crop_cells(image, xy, size)
        padded[rows_a] = pad
        if sources is not None:
            sources[rows_a] = crops
        if size == PATCH_SIZE:
            patches[rows_a] = crops
        else:
            patches[rows_a] = np.stack([resize_to_patch(c) for c in crops])
        if progress is not None:
            progress(done, len(by_image))
    ps = PatchSet(
        patches=patches, labels=table.labels, classes=table.classes,
        cell_ids=[f"{table.path.name}:{line}" for line in table.lines],
        sources=list(table.images), xy=table.xy, padded=padded, fov_px=float(fov_px),
        source_crops=sources,
        extra_meta={
            "built_from": str(table.path.resolve()), "image_dir": str(image_dir.resolve()),
            "split": split,
        },
    )
    if out_folder is not None:
        ps.save(out_folder)
    return ps

