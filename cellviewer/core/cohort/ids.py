"""Cell ids of a cohort run that every run agrees on: a UUID made from the slide and the point.

Why not the store's fresh ids: a slide scored by shard 0 on one machine and again by an
unsharded run on another must give its cells the same ids, or merging the two (or re-running
a failed shard) would duplicate every cell. The classical detector is deterministic, so the
slide's name (as the manifest writes it) and the cell's position, to a thousandth of a pixel,
name the cell; uuid5 makes that a UUID that QuPath and the project keep.
"""

from __future__ import annotations

import uuid

import numpy as np

#: the namespace of cohort cell ids (fixed: changing it changes every id)
COHORT_NAMESPACE = uuid.UUID("2d0f5c1e-8a47-4e43-9b61-3c9a1f0e7d25")


def cell_ids(slide_name: str, xy: np.ndarray) -> list[str]:
    """The ids of the cells at ``xy`` ((N, 2) level-0 pixels) of the slide ``slide_name``.
    Two cells at the same thousandth of a pixel (never, from one detector run) get the same
    point's id with a counter, so ids stay unique."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for x, y in np.asarray(xy, dtype=np.float64).reshape(-1, 2).tolist():
        point = f"{slide_name}\x00{x:.3f}\x00{y:.3f}"
        n = seen.get(point, 0)
        seen[point] = n + 1
        out.append(str(uuid.uuid5(COHORT_NAMESPACE, point if n == 0 else f"{point}\x00{n}")))
    return out
