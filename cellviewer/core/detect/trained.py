"""A trained detector (``trainer.detect.infer.Detector``) run on a project's image: over a
region, the visible area or the whole image, tiled, with progress and cancellation, its
detections added as proposals in one undoable step. Qt-free and torch-free: the detector is
handed in already loaded (the app loads it in its prediction worker, where torch may be
imported), and only its duck-typed surface is used here (:class:`TrainedDetector`).

The area: the detector reads a box around it, wider by its halo (in full-resolution pixels),
aligned to its pooling grid and clipped to the image, so the network sees the tissue beyond
the area's edge as it would in the whole image (a box off the grid would shift the heatmap
and find other cells); what it finds outside the area (or its polygon) is dropped. The
detector's own tiling and seam rule (``trainer/detect/infer.py``) do the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cellviewer.core.detect.area import Area
from cellviewer.core.detect.job import DetectProgress, tissue_skipper
from cellviewer.core.regions.proposals import (
    DEFAULT_MIN_DISTANCE_PX,
    DetectionResult,
    add_detections,
)
from cellviewer.core.sources.identity import open_recorded_image
from cellviewer.core.store import ProjectStore

TRAINED = "trained"


class TrainedDetector(Protocol):
    """What is used of a loaded ``trainer.detect.infer.Detector``."""

    path: Any
    device: Any
    halo: int
    downsample: int
    threshold: float
    diameter_px: float

    def detect_reader(self, width: int, height: int,
                      read: Callable[[int, int, int, int], np.ndarray], *,
                      tile: int | None = ..., tta: bool = ...,
                      skip: Callable[[int, int, int, int], bool] | None = None,
                      progress: Callable[[int, int, int], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> Any: ...


@dataclass
class TrainedDetections:
    """A trained detector's centres in level-0 pixels, with what the dialog reports."""

    x: np.ndarray
    y: np.ndarray
    score: np.ndarray
    model: str  # the model file
    device: str
    threshold: float
    diameter_px: float
    tta: bool = False  # the heatmap was the mean over the 8 orientations
    partial: bool = False
    tiles_done: int = 0
    tiles_total: int = 0
    tiles_skipped: int = 0  # plain glass, not read
    megapixels: float = 0.0
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)

    def xy(self) -> np.ndarray:
        return np.column_stack([self.x, self.y])


def _read_box(area: Area | None, width: int, height: int, margin: float, grid: int
              ) -> tuple[int, int, int, int]:
    """(x0, y0, w, h): the level-0 box the detector reads: the area grown by ``margin``,
    clipped to the image (the whole image without an area), its top-left corner on a
    multiple of ``grid`` level-0 pixels (the network's pooling grid times its reduction:
    the heatmap is then the one the whole image gives, not one shifted by a pixel)."""
    if area is None:
        return 0, 0, width, height
    x0 = max(0, math.floor(area.x0 - margin) // grid * grid)
    y0 = max(0, math.floor(area.y0 - margin) // grid * grid)
    x1 = min(width, math.ceil(area.x1 + margin))
    y1 = min(height, math.ceil(area.y1 + margin))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def run_trained_detection(store: ProjectStore, image_id: int, area: Area | None,
                          detector: TrainedDetector,
                          progress: Callable[[DetectProgress], None] | None = None,
                          cancelled: Callable[[], bool] | None = None,
                          tile: int | None = None, tta: bool = False,
                          skip_background: bool = True) -> TrainedDetections:
    """Find the cells of ``area`` (None: the whole image) on the image as the project
    recorded it, with a loaded trained ``detector``. ``progress`` after each tile;
    ``cancelled`` before each (a cancelled run returns what it found, ``partial``).
    ``tile``: the tile side in working pixels (None: the detector's default). ``tta``: each
    tile's heatmap is the mean over its 8 orientations (8 times the work).
    ``skip_background``: tiles of plain glass (the classical detector's tissue rule,
    :func:`~cellviewer.core.detect.job.tissue_skipper`) are neither read nor run."""
    source = open_recorded_image(store.image(image_id))
    try:
        width, height = source.dimensions
        if area is not None:
            area = area.clipped(width, height)
            if area is None:
                raise ValueError("the area lies outside the image")
        margin = float(detector.halo) * float(detector.downsample)
        grid = int(getattr(detector, "multiple", 1)) * int(detector.downsample)
        bx, by, bw, bh = _read_box(area, width, height, margin, max(1, grid))
        area_mp = (area.megapixels if area is not None else width * height / 1e6)

        def read(x: int, y: int, w: int, h: int) -> np.ndarray:
            return source.read_region(0, bx + x, by + y, w, h)

        tissue = tissue_skipper(source, Area.box(bx, by, bw, bh)) if skip_background else None

        def skip(x: int, y: int, w: int, h: int) -> bool:
            return tissue is not None and tissue(bx + x, by + y, w, h)

        state = {"tiles": 0}

        def report(done: int, total: int, cells: int) -> None:
            state["tiles"] = total
            if progress is not None:
                progress(DetectProgress(cells, done, total, area_mp * done / total, area_mp,
                                        time.monotonic() - t0))

        t0 = time.monotonic()
        kwargs: dict[str, Any] = {} if tile is None else {"tile": int(tile)}
        if tta:  # only asked of a detector when wanted: older duck-typed detectors lack it
            kwargs["tta"] = True
        found = detector.detect_reader(bw, bh, read, progress=report, cancelled=cancelled,
                                       skip=skip, **kwargs)
    finally:
        source.close()
    x = np.asarray(found.x, dtype=np.float64) + bx
    y = np.asarray(found.y, dtype=np.float64) + by
    score = np.asarray(found.score, dtype=np.float32)
    if area is not None and len(x):
        keep = area.contains(x, y)
        x, y, score = x[keep], y[keep], score[keep]
    total = state["tiles"] or int(found.tiles)
    return TrainedDetections(
        x, y, score, model=str(detector.path), device=str(detector.device),
        threshold=float(detector.threshold), diameter_px=float(detector.diameter_px),
        tta=bool(tta), partial=bool(found.partial), tiles_done=int(found.tiles),
        tiles_total=total, tiles_skipped=int(getattr(found, "tiles_skipped", 0)),
        megapixels=area_mp, elapsed_s=float(found.elapsed_s), notes=list(found.notes))


def add_trained_to_project(store: ProjectStore, image_id: int, found: TrainedDetections,
                           min_distance_px: float = DEFAULT_MIN_DISTANCE_PX
                           ) -> DetectionResult:
    """``found`` as the proposals of one detection run (one undoable action); the run
    record keeps the model file, device, threshold and whether the run was cancelled."""
    params = {"model": found.model, "model_name": Path(found.model).name,
              "device": found.device, "threshold": found.threshold,
              "diameter_px": found.diameter_px, "tta": found.tta, "partial": found.partial,
              "tiles": found.tiles_done, "tiles_skipped": found.tiles_skipped,
              "notes": list(found.notes)}
    return add_detections(store, image_id, found.xy(), found.score,
                          method=f"{TRAINED} {Path(found.model).name}", params=params,
                          min_distance_px=min_distance_px)
