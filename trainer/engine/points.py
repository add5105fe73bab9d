"""Patches of the cells listed in a points CSV, for prediction (no class column needed).

The CSV has a header with at least ``image``, ``x`` and ``y`` (0-based pixels, continuous;
other columns, e.g. ``class``, are carried as the true label when present). Crops follow the
patch-set rule (``trainer.formats.patchset.crop_window``: origin ``floor(x) - F // 2``,
reflect padding at the edges) at the model's field of view, resized to 40x40.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from trainer.formats.patchset import PatchSetError, crop_window, resize_to_patch


def points_patches(csv_path: str | Path, image_dir: str | Path, fov_px: float = 40,
                   keep_source_crops: bool = False):
    """(patches (N, 40, 40, 3) uint8, source crops or None, rows) where rows are dicts with
    ``cell_id`` (file:line), ``source``, ``x``, ``y``, ``label``."""
    from PIL import Image

    csv_path, image_dir = Path(csv_path), Path(image_dir)
    size = int(round(fov_px))
    if not csv_path.is_file():
        raise PatchSetError(f"{csv_path}: no such file")
    rows: list[dict] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("image", "x", "y") if c not in header]
        if missing:
            raise PatchSetError(f"{csv_path}, line 1: missing column(s) {', '.join(missing)}")
        label_col = next((c for c in ("class", "class_id", "label") if c in header), None)
        for raw in reader:
            line = reader.line_num
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            try:
                x, y = float(row["x"]), float(row["y"])
            except ValueError:
                raise PatchSetError(f"{csv_path}, line {line}: x/y are not numbers") from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise PatchSetError(f"{csv_path}, line {line}: x/y are not finite")
            if not row["image"]:
                raise PatchSetError(f"{csv_path}, line {line}: empty image name")
            rows.append({"cell_id": f"{csv_path.name}:{line}", "source": row["image"], "x": x,
                         "y": y, "label": row.get(label_col, "") if label_col else "",
                         "line": line})
    if not rows:
        raise PatchSetError(f"{csv_path}: no cells")
    patches = np.empty((len(rows), 40, 40, 3), dtype=np.uint8)
    crops = np.empty((len(rows), size, size, 3), dtype=np.uint8) if keep_source_crops else None
    by_image: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_image.setdefault(r["source"], []).append(i)
    for name, idx in by_image.items():
        path = image_dir / name
        try:
            with Image.open(path) as img:
                image = np.asarray(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            line = rows[idx[0]]["line"]
            raise PatchSetError(f"{csv_path}, line {line}: cannot read image {path} "
                                f"({exc})") from exc
        for i in idx:
            crop, _ = crop_window(image, rows[i]["x"], rows[i]["y"], size)
            if crops is not None:
                crops[i] = crop
            patches[i] = resize_to_patch(np.ascontiguousarray(crop))
    for r in rows:
        r.pop("line")
    return patches, crops, rows
