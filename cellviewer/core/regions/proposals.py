"""A detector's detections become *proposed* cells, which people accept, delete or complete.

A proposal is a cell with the proposed flag set (schema version 3), label source
``detector``, its detection score and the id of its detection run; no class, or the active
classifier's prediction when the user asked to detect and classify in one go. Accepting clears
the flag and keeps the rest, so an accepted cell still says where it came from. Proposals are
left out of every training patch set until accepted (``core/training``).

One detection run is one undoable step (:func:`add_detections`): its run record and all its
proposals are written in one transaction. Detections closer than ``min_distance_px`` to a marker
already on the image (accepted or proposed) are not added, so running a detector over cells
that already exist neither duplicates nor moves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cellviewer.core.regions.summary import cells_in_region
from cellviewer.core.store import ProjectStore

DETECTOR = "detector"
DEFAULT_MIN_DISTANCE_PX = 4.0


@dataclass(frozen=True)
class DetectionResult:
    run_id: str | None  # None when nothing was added (no run recorded)
    n_found: int  # detections given
    n_added: int  # proposals added
    n_skipped: int  # detections near an existing marker (or outside the image)
    ids: tuple[str, ...]  # the new proposals
    message: str


def near_existing(existing_xy: np.ndarray, xy: np.ndarray, min_distance: float) -> np.ndarray:
    """Which of ``xy`` lie closer than ``min_distance`` to a point of ``existing_xy``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    existing_xy = np.asarray(existing_xy, dtype=np.float64).reshape(-1, 2)
    if not len(xy) or not len(existing_xy) or min_distance <= 0:
        return np.zeros(len(xy), dtype=bool)
    from scipy.spatial import cKDTree  # (here: scipy is half a second of the app's start-up)

    dist, _ = cKDTree(existing_xy).query(xy, k=1, distance_upper_bound=float(min_distance))
    return dist < min_distance


def add_detections(store: ProjectStore, image_id: int, xy, scores=None, *, method: str,
                   params: dict | None = None,
                   min_distance_px: float = DEFAULT_MIN_DISTANCE_PX,
                   class_ids: Sequence[int | None] | np.ndarray | None = None
                   ) -> DetectionResult:
    """Add detections (``xy`` (N, 2) level-0 px, ``scores`` (N,)) to an image as proposals of
    one run of ``method`` (with its ``params``), ONE undoable action. ``class_ids``: a
    classifier's prediction per detection (None / -1: no class). Detections outside the image
    or nearer than ``min_distance_px`` to an existing marker are skipped."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    scores_arr = (np.full(n, np.nan) if scores is None
                  else np.asarray(scores, dtype=np.float64).reshape(-1))
    if len(scores_arr) != n:
        raise ValueError(f"{len(scores_arr)} scores for {n} detections")
    classes = None if class_ids is None else np.asarray(
        [-1 if c is None else int(c) for c in np.asarray(class_ids, dtype=object).tolist()],
        dtype=np.int64)
    if classes is not None and len(classes) != n:
        raise ValueError(f"{len(classes)} class ids for {n} detections")
    image = store.image(image_id)
    finite = np.isfinite(xy).all(axis=1)
    on_image = finite & (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & \
        (xy[:, 0] < image.width) & (xy[:, 1] < image.height)
    keep = on_image.copy()
    existing = store.cell_arrays(image_id).xy
    keep[keep] = ~near_existing(existing, xy[keep], min_distance_px)
    take = np.flatnonzero(keep)
    n_added = len(take)
    if not n_added:
        return DetectionResult(None, n, 0, n, (),
                               f"{n:,} detection{'s' if n != 1 else ''}, none added: "
                               "each lies near an existing marker or outside the image"
                               if n else "no detections")
    with store.batch(f"Detect: {n_added:,} proposal{'s' if n_added != 1 else ''} ({method})",
                     action="propose"):
        run = store.add_detection_run(image_id, method, params, n_found=n, n_added=n_added)
        ids = store.add_cells(
            image_id, xy[take], None if classes is None else classes[take], source=DETECTOR,
            proposed=True, scores=scores_arr[take], run_id=run)
    skipped = n - n_added
    return DetectionResult(run, n, n_added, skipped, tuple(ids),
                           f"{n_added:,} proposal{'s' if n_added != 1 else ''} added"
                           + (f", {skipped:,} skipped (near an existing marker or outside "
                              "the image)" if skipped else ""))


def accept(store: ProjectStore, ids) -> int:
    """Accept these proposals (others among ``ids`` are left alone); one undoable action."""
    return store.accept_proposals(ids)


def accept_in_region(store: ProjectStore, region_uuid: str) -> int:
    """Accept every proposal inside a region; one undoable action. Returns how many."""
    cells, mask = cells_in_region(store, region_uuid)
    rows = cells.rows[mask & cells.proposed]
    return store.accept_proposals(rows) if len(rows) else 0


def delete_proposals(store: ProjectStore, ids) -> int:
    """Delete those of ``ids`` that are proposals (accepted cells among them stay)."""
    ids = [str(i) for i in ids]
    if not ids:
        return 0
    table = store.cell_table(cell_ids=ids)
    chosen = [i for i, p in zip(table["ids"], table["proposed"].tolist(), strict=True) if p]
    return store.delete_cells(chosen) if chosen else 0


def proposals_of_image(store: ProjectStore, image_id: int) -> list[str]:
    cells = store.cell_arrays(image_id)
    return [str(i) for i in cells.ids[cells.proposed]]
