"""Detection in a project: where to look (a region, the visible area, the image), the run on
the recorded image file, and its detections added as proposals: plain functions, so the app's
dialog (a thin view over them, in a worker) and a script do the same.

A run is two steps, each safe off the GUI thread: :func:`run_detection` reads the image and
finds the cells (progress, cancel); :func:`add_to_project` writes what was found as ONE
undoable action of proposals (:func:`cellviewer.core.regions.proposals.add_detections`),
skipping detections near an existing marker. Between them the caller may ask whether a
cancelled (partial) run is kept: nothing is written until then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from cellviewer.core.detect.area import Area
from cellviewer.core.detect.job import Detections, DetectProgress, detect
from cellviewer.core.detect.params import DetectParams
from cellviewer.core.regions.geometry import from_geojson
from cellviewer.core.regions.proposals import (
    DEFAULT_MIN_DISTANCE_PX,
    DetectionResult,
    add_detections,
)
from cellviewer.core.sources.identity import open_recorded_image
from cellviewer.core.store import ProjectStore

WHERE = ("region", "visible", "image")  # what the dialog offers, in its order
CLASSICAL = "classical"


def area_for(store: ProjectStore, image_id: int, where: str, *, region_uuid: str | None = None,
             visible: tuple[float, float, float, float] | None = None) -> Area | None:
    """The area of ``where``: a region's polygon (``region_uuid``, which must lie on the
    image), the ``visible`` level-0 box (x0, y0, x1, y1), or None for the whole image."""
    if where == "image":
        return None
    if where == "region":
        if region_uuid is None:
            raise ValueError("no region is chosen: choose one in the Regions panel first")
        region = store.region(region_uuid)
        if region.image_id != image_id:
            raise ValueError(f"region {region.name!r} lies on another image")
        poly = from_geojson(region.geometry)
        return Area.from_polygon(list(poly.exterior.coords))
    if where == "visible":
        if visible is None:
            raise ValueError("the visible area is not known")
        x0, y0, x1, y1 = visible
        return Area.box(x0, y0, x1 - x0, y1 - y0)
    raise ValueError(f"unknown detection area {where!r} (one of {', '.join(WHERE)})")


def run_detection(store: ProjectStore, image_id: int, area: Area | None, params: DetectParams,
                  progress: Callable[[DetectProgress], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> Detections:
    """Find the cells of ``area`` on the image as the project recorded it (a replaced file
    is refused: :class:`~cellviewer.core.sources.identity.ImageChangedError`)."""
    source = open_recorded_image(store.image(image_id))
    try:
        return detect(source, area, params, progress, cancelled)
    finally:
        source.close()


def add_to_project(store: ProjectStore, image_id: int, found: Detections,
                   min_distance_px: float = DEFAULT_MIN_DISTANCE_PX) -> DetectionResult:
    """``found`` as proposals of one detection run (one undoable action), its settings kept
    with the run."""
    settings = asdict(found.params)
    settings.update(partial=found.partial, level=found.level, tiles=found.tiles_done,
                    notes=list(found.notes))
    return add_detections(store, image_id, found.xy(), found.score, method=CLASSICAL,
                          params=settings, min_distance_px=min_distance_px)
