"""The patch-set format shared by the desktop app (writer) and the trainer (reader).

A patch set is a folder (by convention named ``*.patches``) holding:

- ``meta.json``: ``{"format": "cellviewer-patchset", "version": 1, "classes": [...],
  "patch_size": 40, "fov_px": F, "source_crop_size": S0 or null, "padding": "reflect",
  "n": N, "n_padded": K}``;
- ``patches.npy``: uint8 array (N, 40, 40, 3), RGB, opened memory-mapped, never copied through
  Python objects;
- ``labels.npy``: int16 array (N,), index into ``classes``; -1 for an unlabelled cell;
- ``cells.csv``: one row per patch, in the same order: ``cell_id,label,source,x,y,padded``
  (x, y in level-0 pixels of ``source``; label the class name or empty);
- ``source_crops.npy`` (optional): uint8 (N, S0, S0, 3), the crop at the field of view before
  it was resized to 40x40, which pre-resize blur needs.

Cropping convention (shared with ``cellviewer.core``): the window of size F around a cell at
continuous (x, y) starts at ``x0 = floor(x) - F // 2``, ``y0 = floor(y) - F // 2``, so a
40-pixel window at F = 40 equals ``image[y0:y0 + 40, x0:x0 + 40]``. Pixels of the window that
leave the image are filled by **reflection** about the edge pixel (NumPy's ``mode="reflect"``:
the edge itself is not repeated); such cells are counted in ``n_padded`` and flagged in
``cells.csv``, never dropped. A crop at F != 40 is resized to 40x40 with PIL's antialiased
bilinear filter.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np

FORMAT = "cellviewer-patchset"
VERSION = 1
PATCH_SIZE = 40
PADDING: Final = "reflect"  # Final: np.pad takes the literal mode


class PatchSetError(ValueError):
    """A patch set (or its source data) is malformed; the message names the file and cause."""


@dataclass
class PatchSet:
    """A loaded patch set. ``patches`` (and ``source_crops``) are memory-mapped when loaded."""

    patches: np.ndarray  # (N, 40, 40, 3) uint8
    labels: np.ndarray  # (N,) int16, -1 = unlabelled
    classes: list[str]
    cell_ids: list[str]
    sources: list[str]
    xy: np.ndarray  # (N, 2) float64, level-0 pixels
    padded: np.ndarray  # (N,) bool
    fov_px: float = PATCH_SIZE
    source_crops: np.ndarray | None = None  # (N, S0, S0, 3) uint8
    path: Path | None = None
    extra_meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    @property
    def n_padded(self) -> int:
        return int(np.count_nonzero(self.padded))

    def save(self, folder: str | os.PathLike) -> Path:
        """Write atomically: into ``folder.tmp``, then rename over ``folder``."""
        folder = Path(folder)
        self.validate(str(folder))
        tmp = folder.with_name(folder.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        np.save(tmp / "patches.npy", np.ascontiguousarray(self.patches, dtype=np.uint8))
        np.save(tmp / "labels.npy", np.asarray(self.labels, dtype=np.int16))
        if self.source_crops is not None:
            np.save(tmp / "source_crops.npy", np.ascontiguousarray(self.source_crops, np.uint8))
        with open(tmp / "cells.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["cell_id", "label", "source", "x", "y", "padded"])
            for i in range(len(self)):
                lab = int(self.labels[i])
                w.writerow([
                    self.cell_ids[i], self.classes[lab] if lab >= 0 else "", self.sources[i],
                    repr(float(self.xy[i, 0])), repr(float(self.xy[i, 1])), int(self.padded[i]),
                ])
        meta = {
            **self.extra_meta,
            "format": FORMAT,
            "version": VERSION,
            "classes": list(self.classes),
            "patch_size": PATCH_SIZE,
            "fov_px": float(self.fov_px),
            "source_crop_size": (
                None if self.source_crops is None else int(self.source_crops.shape[1])
            ),
            "padding": PADDING,
            "n": len(self),
            "n_padded": self.n_padded,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        self.path = folder
        return folder

    def validate(self, where: str = "patch set") -> None:
        """Shapes, dtypes and lengths agree and every label is a class index or -1;
        :class:`PatchSetError` naming ``where`` otherwise (never an exception of NumPy's)."""
        if self.patches.ndim != 4 or self.patches.shape[1:] != (PATCH_SIZE, PATCH_SIZE, 3):
            shape = self.patches.shape
            raise PatchSetError(f"{where}: patches must be (N, 40, 40, 3), got {shape}")
        if self.patches.dtype != np.uint8:
            raise PatchSetError(f"{where}: patches must be uint8 RGB, not {self.patches.dtype}")
        n = self.patches.shape[0]
        if np.ndim(self.labels) != 1 or not np.issubdtype(np.asarray(self.labels).dtype,
                                                          np.integer):
            raise PatchSetError(f"{where}: labels must be a list of class indices (1-D "
                                f"integers), not {np.asarray(self.labels).dtype} of shape "
                                f"{np.shape(self.labels)}")
        if self.source_crops is not None:
            sc = self.source_crops.shape
            if (self.source_crops.ndim != 4 or sc[1] != sc[2] or sc[3] != 3 or sc[1] < 1
                    or self.source_crops.dtype != np.uint8):
                raise PatchSetError(f"{where}: source crops must be uint8 (N, S, S, 3), got "
                                    f"{self.source_crops.dtype} {sc}")
        lengths = {
            "labels": len(self.labels), "cell_ids": len(self.cell_ids),
            "sources": len(self.sources), "xy": len(self.xy), "padded": len(self.padded),
        }
        if self.source_crops is not None:
            lengths["source_crops"] = len(self.source_crops)
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise PatchSetError(f"{where}: {n} patches but lengths disagree: {bad}")
        if n and (self.labels.max(initial=-1) >= len(self.classes) or self.labels.min() < -1):
            k = len(self.classes)
            raise PatchSetError(f"{where}: a label index is outside the {k} classes")


def load_patchset(folder: str | os.PathLike, mmap: bool = True) -> PatchSet:
    """Open a patch set; arrays are memory-mapped (no copy) unless ``mmap=False``."""
    folder = Path(folder)
    meta = _read_meta(folder / "meta.json", folder)
    mode: Literal["r"] | None = "r" if mmap else None
    try:
        patches = np.load(folder / "patches.npy", mmap_mode=mode)
        labels = np.load(folder / "labels.npy")
        crops_file = folder / "source_crops.npy"
        crops = np.load(crops_file, mmap_mode=mode) if crops_file.is_file() else None
    except (OSError, ValueError, EOFError) as exc:
        raise PatchSetError(f"{folder}: cannot read arrays ({exc})") from exc
    if np.ndim(patches) != 4:
        raise PatchSetError(f"{folder}: patches must be (N, 40, 40, 3), got {np.shape(patches)}")
    if np.ndim(labels) != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise PatchSetError(f"{folder}: labels must be a list of class indices (1-D integers), "
                            f"not {labels.dtype} of shape {np.shape(labels)}")
    k = len(meta["classes"])
    if labels.size and (labels.min() < -1 or labels.max() >= k):
        raise PatchSetError(f"{folder}: a label index is outside the {k} classes")
    cell_ids, sources, xy, padded = _read_cells(folder / "cells.csv")
    n_meta = meta.get("n")
    if n_meta is not None and n_meta != len(patches):
        raise PatchSetError(
            f"{folder}: meta.json says {n_meta} patches but patches.npy holds {len(patches)}")
    known = {"format", "version", "classes", "patch_size", "fov_px", "source_crop_size",
             "padding", "n", "n_padded"}
    ps = PatchSet(
        patches=patches, labels=labels.astype(np.int16, copy=False), classes=list(meta["classes"]),
        cell_ids=cell_ids, sources=sources, xy=np.asarray(xy, dtype=np.float64).reshape(-1, 2),
        padded=np.asarray(padded, dtype=bool), fov_px=float(meta["fov_px"]),
        source_crops=crops, path=folder,
        extra_meta={k: v for k, v in meta.items() if k not in known},
    )
    ps.validate(str(folder))
    return ps


#: the largest field of view a patch set may record (the crops are fov x fov pixels)
MAX_FOV_PX = 4096.0


def _read_meta(meta_path: Path, folder: Path) -> dict:
    """``meta.json``, checked: an object with the format, a version this reader knows, a list of
    class names and a finite field of view. :class:`PatchSetError` naming the file otherwise
    (its JSON, its encoding, its nesting and each field's type included)."""
    if not meta_path.is_file():
        raise PatchSetError(f"{folder}: not a patch set (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PatchSetError(f"{meta_path}: cannot read ({exc.strerror or exc})") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PatchSetError(f"{meta_path}: not valid JSON ({str(exc)[:200]})") from exc
    if not isinstance(meta, dict):
        raise PatchSetError(f"{meta_path}: not a patch set description (a JSON "
                            f"{type(meta).__name__}, not an object)")
    if meta.get("format") != FORMAT:
        raise PatchSetError(f"{meta_path}: format is {meta.get('format')!r}, not {FORMAT!r}")
    version = meta.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise PatchSetError(f"{meta_path}: version {version!r} is not a whole number")
    if version > VERSION:
        raise PatchSetError(f"{meta_path}: version {version} is newer than this trainer")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise PatchSetError(f"{meta_path}: 'classes' must be a list of class names")
    fov = meta.get("fov_px", PATCH_SIZE)
    if isinstance(fov, bool) or not isinstance(fov, (int, float)) or not math.isfinite(fov) \
            or not 1 <= fov <= MAX_FOV_PX:
        raise PatchSetError(f"{meta_path}: the field of view fov_px = {fov!r} is not a number "
                            f"of pixels within 1..{MAX_FOV_PX:g}")
    meta["fov_px"] = float(fov)
    return meta


def _read_cells(path: Path) -> tuple[list[str], list[str], list[tuple[float, float]], list[bool]]:
    """The columns of ``cells.csv`` (UTF-8, as ``PatchSet.save`` writes it); PatchSetError
    naming the line of a malformed row, or the file when it is not text or not CSV."""
    if not path.is_file():
        raise PatchSetError(f"{path}: the cell table is missing")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return _read_cell_rows(path, csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PatchSetError(f"{path}: not a readable cell table ({str(exc)[:200]})") from exc
    except OSError as exc:
        raise PatchSetError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _read_cell_rows(path: Path, reader: csv.DictReader
                    ) -> tuple[list[str], list[str], list[tuple[float, float]], list[bool]]:
    cell_ids: list[str] = []
    sources: list[str] = []
    xy: list[tuple[float, float]] = []
    padded: list[bool] = []
    missing = {"cell_id", "source", "x", "y"} - set(reader.fieldnames or [])
    if missing:
        raise PatchSetError(f"{path}, line 1: missing column(s) {sorted(missing)}")
    for row in reader:
        try:
            xy.append((float(row["x"]), float(row["y"])))
        except (TypeError, ValueError):
            raise PatchSetError(
                f"{path}, line {reader.line_num}: x, y = {row['x']!r}, {row['y']!r} "
                "are not numbers") from None
        cell_ids.append(row["cell_id"])
        sources.append(row["source"])
        padded.append(row.get("padded", "0") == "1")
    return cell_ids, sources, xy, padded


def window_origin(x: float, y: float, size: int) -> tuple[int, int]:
    """Top-left pixel of the ``size`` window around (x, y): ``floor(x) - size // 2``."""
    return math.floor(x) - size // 2, math.floor(y) - size // 2


def crop_window(image: np.ndarray, x: float, y: float, size: int) -> tuple[np.ndarray, bool]:
    """The ``size`` x ``size`` window around (x, y) of an (H, W, C) image, reflect-padded where
    it leaves the image. Returns the crop and whether padding was needed."""
    h, w = image.shape[:2]
    x0, y0 = window_origin(x, y, size)
    x1, y1 = x0 + size, y0 + size
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return image[y0:y1, x0:x1], False
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx0 >= cx1 or cy0 >= cy1:  # the window misses the image entirely
        return np.zeros((size, size) + image.shape[2:], dtype=image.dtype), True
    inner = image[cy0:cy1, cx0:cx1]
    pad = ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1)) + ((0, 0),) * (image.ndim - 2)
    return np.pad(inner, pad, mode=PADDING), True


def resize_to_patch(crop: np.ndarray, size: int = PATCH_SIZE) -> np.ndarray:
    """Resize a square RGB uint8 crop to ``size`` x ``size`` (antialiased bilinear)."""
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(crop))
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
