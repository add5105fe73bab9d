"""One slide of a cohort, detected or classified, its files written: the unit of work that
``cellviewer detect``/``predict`` run per item of their shard and that a Dask cluster runs as
one task (``client.map(detect_slide, items, out=...)``).

Each function returns a :class:`SlideOutcome` and never raises for a bad slide: a missing or
unreadable slide, a bad regions file or a failed write is the outcome's ``message`` (naming the
file and the cause), so a batch goes on with the others and reports them at the end. Nothing is
written for a slide that fails. The arguments and the outcome are plain picklable data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainer.formats.errors import TrainerError

from .ids import cell_ids
from .manifest import CohortItem
from .results import SlideResult, image_name, is_done, read_cells, write_result

#: progress(fraction of the slide, cells so far)
SlideProgress = Callable[[float, int], None]
#: cells cropped and classified at a time (bounds the patches held in memory: 4096 x 4.8 kB)
PREDICT_CHUNK = 4096


@dataclass
class SlideOutcome:
    """What became of one slide: ``ok`` with its cell count (and cells per predicted class),
    or not, with ``message`` naming the file and the cause. ``skipped``: already done."""

    name: str
    key: str
    ok: bool
    cells: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    message: str = ""
    skipped: bool = False
    elapsed_s: float = 0.0


class _SlideError(Exception):
    """A slide that cannot be done; the message names the file and the cause."""


def detect_slide(item: CohortItem, out: str | os.PathLike, params: Any = None, *,
                 detector: Any = None, skip_done: bool = False,
                 progress: SlideProgress | None = None) -> SlideOutcome:
    """Detect the cells of one slide (in its regions, when the item names a regions file)
    and write ``<key>.cells.csv`` and ``<key>.geojson`` into ``out``. The classical detector
    with ``params`` (a :class:`cellviewer.core.detect.DetectParams`; default settings when
    None), or a trained ``detector`` (``trainer.detect.infer``'s, loaded by the caller: its
    ``detect_reader`` reads the slide tile by tile at full resolution)."""
    t0 = time.monotonic()
    if skip_done and is_done(out, item.key):
        return _skipped(out, item, t0)
    try:
        ids, xy, scores = _detect(item, params, detector, progress)
        _write(out, item.key, SlideResult(image_name(item.path, out), ids, xy, scores))
    except _SlideError as exc:
        return SlideOutcome(item.name, item.key, False, message=str(exc),
                            elapsed_s=time.monotonic() - t0)
    return SlideOutcome(item.name, item.key, True, len(ids), elapsed_s=time.monotonic() - t0)


def predict_slide(item: CohortItem, out: str | os.PathLike, predictor: Any, *,
                  cells: str | os.PathLike | None = None, tta: bool = False,
                  skip_done: bool = False, progress: SlideProgress | None = None
                  ) -> SlideOutcome:
    """Classify the cells of one slide and write its two files (with the predicted class,
    confidence and probabilities) into ``out``. The cells: the project's, for an item of a
    project, else those of ``<key>.cells.csv`` in the ``cells`` folder (a ``cellviewer
    detect`` results folder), with their ids. ``predictor``: a loaded
    ``trainer.predict.Predictor`` (the core never imports torch; a Dask task that starts from a
    model file's path is :func:`cellviewer.cli.cohort_tasks.predict_slide_task`)."""
    t0 = time.monotonic()
    if skip_done and is_done(out, item.key):
        return _skipped(out, item, t0)
    try:
        ids, xy, record = _cells_of(item, cells)
        try:
            probs = _classify(item, record, xy, predictor, tta, progress)
        except TrainerError as exc:  # the model's outputs are not numbers for these cells
            raise _SlideError(f"{item.where}: {exc}") from None
        result = SlideResult(image_name(item.path, out), ids, xy, None,
                             list(predictor.classes), probs)
        _write(out, item.key, result)
    except _SlideError as exc:
        return SlideOutcome(item.name, item.key, False, message=str(exc),
                            elapsed_s=time.monotonic() - t0)
    return SlideOutcome(item.name, item.key, True, len(ids), result.class_counts(),
                        elapsed_s=time.monotonic() - t0)


def _write(out: str | os.PathLike, key: str, result: SlideResult) -> None:
    from cellviewer.core.export.atomic import ExportError

    try:
        write_result(out, key, result)
    except ExportError as exc:  # disk full, a read-only folder: this slide fails, not the run
        raise _SlideError(str(exc)) from None


def _skipped(out: str | os.PathLike, item: CohortItem, t0: float) -> SlideOutcome:
    """A finished slide's outcome, from its CSV (what it counted when it was done)."""
    import csv

    from .results import result_paths

    counts: dict[str, int] = {}
    n = 0
    with open(result_paths(out, item.key)[0], newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            n += 1
            name = row.get("predicted_class")
            if name:
                counts[name] = counts.get(name, 0) + 1
    return SlideOutcome(item.name, item.key, True, n, counts, skipped=True,
                        elapsed_s=time.monotonic() - t0)


# --- detection -------------------------------------------------------------------------------


def _open(item: CohortItem) -> Any:
    from cellviewer.core.sources import ImageOpenError, open_image

    try:
        return open_image(item.path)
    except ImageOpenError as exc:
        raise _SlideError(f"{item.where}: {exc}") from None


def _detect(item: CohortItem, params: Any, detector: Any, progress: SlideProgress | None
            ) -> tuple[list[str], np.ndarray, np.ndarray]:
    from cellviewer.core.detect import DetectParams, detect
    from cellviewer.core.sources import ImageOpenError

    params = params or DetectParams()
    areas, shape = _regions(item)
    with _open(item) as source:
        if params.unit == "um" and params.diameter is not None and not source.mpp:
            raise _SlideError(f"{item.path}: the image does not give its pixel size, so a "
                              "diameter in µm cannot be converted; give --diameter-px")
        parts = []
        if detector is not None:  # a trained detector: the whole slide, then the regions
            parts.append(_detect_trained(item, source, detector, progress))
            areas = []
        for k, area in enumerate(areas):
            def report(p: Any, k: int = k) -> None:
                if progress is not None:
                    progress((k + p.fraction) / len(areas), p.cells)
            try:
                parts.append(detect(source, area, params, progress=report))
            except ImageOpenError as exc:  # damaged data found while reading
                raise _SlideError(f"{item.where}: {exc}") from None
    x = np.concatenate([p.x for p in parts]) if parts else np.zeros(0)
    y = np.concatenate([p.y for p in parts]) if parts else np.zeros(0)
    s = np.concatenate([p.score for p in parts]) if parts else np.zeros(0, np.float32)
    if shape is not None:  # the exact regions: holes, and no cell twice where areas overlap
        from shapely import contains_xy

        keep = np.asarray(contains_xy(shape, x, y), dtype=bool)
        x, y, s = x[keep], y[keep], s[keep]
    order = np.lexsort((x, y))
    xy = np.stack([x[order], y[order]], axis=1).astype(np.float64).reshape(-1, 2)
    ids = cell_ids(item.name, xy)
    if len(set(ids)) != len(ids):  # overlapping regions found one cell twice
        first = sorted({i: n for n, i in reversed(list(enumerate(ids)))}.values())
        xy, ids = xy[first], [ids[n] for n in first]
        s = s[order][first]
    else:
        s = s[order]
    return ids, xy, np.asarray(s, dtype=np.float32)


def _detect_trained(item: CohortItem, source: Any, detector: Any,
                    progress: SlideProgress | None) -> Any:
    from cellviewer.core.detect import tissue_skipper
    from cellviewer.core.sources import ImageOpenError

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        return source.read_region(0, x, y, w, h)

    def report(done: int, tiles: int, cells: int) -> None:
        if progress is not None:
            progress(done / max(tiles, 1), cells)

    try:
        return detector.detect_reader(source.width, source.height, read, progress=report,
                                      skip=tissue_skipper(source))
    except ImageOpenError as exc:
        raise _SlideError(f"{item.where}: {exc}") from None


def _regions(item: CohortItem) -> tuple[list[Any], Any]:
    """The areas to detect in (the whole slide: [None]) and their exact shape (None)."""
    from cellviewer.core.detect import Area

    if item.regions is None:
        return [None], None
    from shapely.geometry import shape as to_shape
    from shapely.ops import unary_union

    from trainer.formats.cell_rows import CellFileError, read_cell_file

    try:
        parsed = read_cell_file(item.regions)
    except CellFileError as exc:
        raise _SlideError(f"{item.where}: regions file {exc}") from None
    shapes = []
    for region in parsed.regions:
        try:
            geom = to_shape(region.geometry)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise _SlideError(f"{item.regions}, {region.where}: not a polygon ({exc})") from None
        if geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_empty:
            shapes.append(geom if geom.is_valid else geom.buffer(0))
    if not shapes:
        raise _SlideError(f"{item.regions}: no region polygons in the file (the slide's "
                          "regions; leave the manifest's regions cell empty for the whole "
                          "slide)")
    union = unary_union(shapes)
    polygons = list(getattr(union, "geoms", [union]))
    return [Area.from_polygon(np.asarray(p.exterior.coords)) for p in polygons], union


# --- classification --------------------------------------------------------------------------


def _cells_of(item: CohortItem, cells: str | os.PathLike | None
              ) -> tuple[list[str], np.ndarray, Any]:
    """(ids, points, the project's image record or None) of the slide's cells."""
    if item.project is not None and item.image_id is not None:
        from cellviewer.core.store import ProjectError, ProjectStore

        try:
            with ProjectStore.open(item.project, readonly=True) as store:
                record = store.image(item.image_id)
                arrays = store.cell_arrays(item.image_id)
        except (ProjectError, KeyError) as exc:
            raise _SlideError(f"{item.where}: {exc}") from None
        ids = [str(i) for i in arrays.ids]
        xy = np.asarray(arrays.xy, dtype=np.float64).reshape(-1, 2)
        order = sorted(range(len(ids)), key=ids.__getitem__)
        return [ids[i] for i in order], xy[order], record
    if cells is None:
        raise _SlideError(f"{item.where}: no cells to classify: give the folder of the "
                          "slides' detections (cellviewer predict --cells DIR)")
    if not item.path.exists():  # the slide's own failure, not its detections' (if any)
        raise _SlideError(f"{item.where}: {item.path}: no such file")
    try:
        ids, xy = read_cells(cells, item.key)
    except ValueError as exc:
        raise _SlideError(f"{item.where}: {exc}") from None
    return ids, xy, None


def _classify(item: CohortItem, record: Any, xy: np.ndarray, predictor: Any, tta: bool,
              progress: SlideProgress | None) -> np.ndarray:
    """Probabilities of the cells at ``xy``: cropped by the trainer's rule
    (:func:`cellviewer.core.cells.crop.crop_patches`) in slide-tile order, chunk by chunk."""
    from cellviewer.core.cells.crop import crop_patches
    from cellviewer.core.predict.job import spatial_order
    from cellviewer.core.sources import ImageOpenError

    k = len(predictor.classes)
    probs = np.zeros((len(xy), k), np.float32)
    if not len(xy):
        return probs
    if record is not None:
        from cellviewer.core.sources.identity import open_recorded_image

        try:
            source = open_recorded_image(record)
        except (ImageOpenError, OSError) as exc:
            raise _SlideError(f"{item.where}: {exc}") from None
    else:
        source = _open(item)
    order = spatial_order(xy)
    with source:
        for start in range(0, len(order), PREDICT_CHUNK):
            idx = order[start:start + PREDICT_CHUNK]
            try:
                patches = crop_patches(source, xy[idx], predictor.fov_px).patches
            except (ImageOpenError, ValueError) as exc:
                raise _SlideError(f"{item.where}: {exc}") from None
            probs[idx] = predictor.predict(patches, tta=tta).probs
            if progress is not None:
                progress(min(1.0, (start + len(idx)) / len(order)), start + len(idx))
    return probs
