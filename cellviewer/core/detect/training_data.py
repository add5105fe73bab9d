"""A project's fully annotated regions as training data for the trained detector.

The study's rule: in a region marked annotated (or checked, or reviewed) every cell is marked,
so everything else in it is background; that is what a point detector learns from. The
trainer (``python -m trainer train-detector --regions FILE``) reads plain images, so each
region's bounding box is cut out of its image (a slide included) at full resolution into a
PNG beside the regions file, and the region's polygon and its accepted cells are written in
that crop's pixels. Proposals not yet accepted are never training data.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cellviewer.core.regions.geometry import from_geojson, inside
from cellviewer.core.sources.identity import open_recorded_image
from cellviewer.core.store import ProjectStore

FULLY_ANNOTATED = ("annotated", "checked", "reviewed")
MAX_CROP_PIXELS = 64_000_000  # a region larger than this is refused (split it)


@dataclass
class RegionsFile:
    path: Path  # the regions JSON (its crops beside it)
    regions: int
    cells: int


def write_detector_training_regions(store: ProjectStore, out_dir: str | os.PathLike, *,
                                    statuses: tuple[str, ...] = FULLY_ANNOTATED
                                    ) -> RegionsFile:
    """Write ``out_dir/regions.json`` and one PNG crop per fully annotated region; ValueError
    when the project has none (say which statuses count)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items, n_cells = [], 0
    for image in store.images():
        regions = [r for r in store.regions(image.id) if r.status in statuses]
        if not regions:
            continue
        table = store.cell_table([image.id])
        accepted = ~np.asarray(table["proposed"], dtype=bool)
        xy = np.column_stack([table["x"], table["y"]])[accepted]
        source = open_recorded_image(image)
        try:
            for region in regions:
                poly = from_geojson(region.geometry)
                x0, y0, x1, y1 = poly.bounds
                c0, r0 = max(0, math.floor(x0)), max(0, math.floor(y0))
                c1 = min(image.width, math.ceil(x1))
                r1 = min(image.height, math.ceil(y1))
                if (c1 - c0) * (r1 - r0) > MAX_CROP_PIXELS:
                    raise ValueError(f"region {region.name!r} of {image.name} is too large to "
                                     f"train on in one piece ({c1 - c0} x {r1 - r0} px)")
                crop = source.read_region(0, c0, r0, c1 - c0, r1 - r0)
                name = f"region-{region.uuid}.png"
                Image.fromarray(np.ascontiguousarray(crop[..., :3])).save(out / name)
                mine = xy[inside(poly, xy)] if len(xy) else xy
                ring = np.asarray(poly.exterior.coords) - (c0, r0)
                items.append({"image": name, "name": region.name,
                              "polygon": ring.round(3).tolist(),
                              "points": (mine - (c0, r0)).round(3).tolist(),
                              "source": {"image": str(image.path), "region": region.uuid,
                                         "offset": [c0, r0]}})
                n_cells += len(mine)
        finally:
            source.close()
    if not items:
        raise ValueError(f"{store.path}: no region is fully annotated (status "
                         f"{', '.join(statuses)}): mark the regions whose every cell is marked")
    path = out / "regions.json"
    path.write_text(json.dumps({"regions": items}, indent=1))
    return RegionsFile(path, len(items), n_cells)
