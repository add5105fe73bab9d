"""Patches of the cells listed in a points CSV, for prediction (no class column needed).

The CSV is read by the app's reader (``trainer.formats.tables``: any table the app imports,
with ``image``, ``x`` and ``y`` in 0-based pixels, continuous; a class column, when present,
is carried as the true label). Crops follow the
patch-set rule (``trainer.formats.patchset.crop_window``: origin ``floor(x) - F // 2``,
reflect padding at the edges) at the model's field of view, resized to 40x40.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.formats.cell_rows import CellFileError
from trainer.formats.patchset import PatchSetError, crop_window, resize_to_patch
from trainer.formats.tables import read_table


def points_patches(csv_path: str | Path, image_dir: str | Path, fov_px: float = 40,
                   keep_source_crops: bool = False):
    """(patches (N, 40, 40, 3) uint8, source crops or None, rows) where rows are dicts with
    ``cell_id`` (file:line), ``source``, ``x``, ``y``, ``label``."""
    from PIL import Image

    csv_path, image_dir = Path(csv_path), Path(image_dir)
    size = int(round(fov_px))
    try:
        parsed = read_table(csv_path)
    except CellFileError as exc:
        raise PatchSetError(str(exc)) from None
    if parsed.units != "px":
        raise PatchSetError(f"{csv_path}: coordinates in µm ({parsed.format}); prediction "
                            f"needs pixels")
    rows: list[dict] = []
    for cell in parsed.rows:
        if cell.image is None:
            raise PatchSetError(f"{csv_path}: no image column ({parsed.format})")
        line = int(cell.where.split()[-1])
        rows.append({"cell_id": f"{csv_path.name}:{line}", "source": cell.image, "x": cell.x,
                     "y": cell.y, "label": cell.label or "", "line": line})
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
