"""QuPath GeoJSON: cells from QuPath into one image (:func:`import_geojson`, kept for scripts
and for its ``existing="update"``; the app imports through :mod:`cellviewer.core.io.cell_import`)
and, re-exported from :mod:`cellviewer.core.export.geojson_write`, :func:`export_geojson`.

Read: a FeatureCollection, a bare list of features or a single feature. ``Point`` is one cell;
``MultiPoint`` (QuPath's Points tool: one class per annotation) is one cell per point; a
``Polygon``/``MultiPolygon`` (QuPath's cell detections) is a cell at its centroid. A missing
``objectType`` (QuPath reads that as an annotation) is accepted the same. ``classification`` may
be an object ``{name | names, color}`` or a bare string. A UUID ``id`` is kept as the cell's id;
any other id (and the feature id of a MultiPoint) goes to the cell's metadata. ``p_<class>``
measurements become predictions of a model named after the file; other measurements become
metadata. Errors name the file and the feature's index (and JSON syntax errors the line), and
the import writes nothing then.

Nothing in the file is trusted blindly: only a regular file is read (a FIFO would block for
ever); JSON nested deeper than Python can parse is refused, and so are integers of more than
``MAX_INT_DIGITS`` digits (which would overflow a float) wherever they are; coordinates must be
finite JSON numbers, and a polygon's centroid a finite point; names are text without unpaired
surrogates (which SQLite cannot store); metadata kept as given is nested at most
``MAX_METADATA_DEPTH`` deep. An ``existing="update"`` import moves a cell only within its own
image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellviewer.core.export.geojson_write import export_geojson as export_geojson
from cellviewer.core.io.points_csv import ImportResult
from cellviewer.core.store import (
    CellRecord,
    ProjectError,
    ProjectStore,
)
from cellviewer.core.store.ids import new_ids

PROB_PREFIX = "p_"
IMPORTED_ARCH = "imported"


@dataclass
class GeoCell:
    index: int  # the feature it came from
    x: float
    y: float
    label: str | None
    color: tuple[int, int, int] | None
    cell_id: str | None
    label_source: str | None
    review_status: str | None
    probs: dict[str, float]
    metadata: dict


def _err(path: Path, index: int | None, message: str) -> ProjectError:
    where = f"{path}, feature {index}" if index is not None else str(path)
    return ProjectError(f"{where}: {message}")


def _feature_index(where: str) -> int:
    """The top-level feature of a reader's ``where`` ("feature 3, polygon 2" -> 3)."""
    return int(where.split(",")[0].split()[1])


def read_geojson(path: str | os.PathLike, *, polygons_as_cells: bool = False) -> list[GeoCell]:
    """The cells of a GeoJSON file (read by :mod:`trainer.formats.geojson_read`, which decides
    what each feature is: annotation polygons are regions, not cells, unless
    ``polygons_as_cells``); ``ProjectError`` naming the file and feature."""
    from trainer.formats.cell_rows import CellFileError
    from trainer.formats.geojson_read import read_geojson as read

    path = Path(path)
    try:
        parsed = read(path, polygons_as_cells=polygons_as_cells)
    except CellFileError as e:
        raise ProjectError(str(e)) from None
    cells = []
    for row in parsed.rows:
        metadata = dict(row.metadata)
        if row.outline is not None:
            metadata["outline"] = row.outline
        cells.append(GeoCell(_feature_index(row.where), row.x, row.y, row.label, row.color,
                             row.cell_id, row.label_source, row.review_status,
                             dict(row.probs or {}), metadata))
    return cells


def _color_hex(rgb: tuple[int, int, int] | None) -> str | None:
    return None if rgb is None else "#{:02x}{:02x}{:02x}".format(*rgb)


def import_geojson(store: ProjectStore, path: str | os.PathLike, image_id: int, *,
                   source: str = "imported", existing: str = "error",
                   model_id: int | str | None = "auto") -> ImportResult:
    """Import the cells of a (QuPath) GeoJSON file into one image, as one undoable action.

    ``existing`` says what to do with a feature whose UUID is already a cell of the project:
    "error" (refuse the file), "skip" it, or "update" that cell's label and position (a file
    that went to QuPath and came back edited).

    ``model_id`` receives the ``p_<class>`` probabilities: "auto" (the project's imported model
    with the same classes, created when there is none, so one file per image ends in one
    model), a model id, or None (ignore them).
    """
    if existing not in ("error", "skip", "update"):
        raise ValueError(f"existing={existing!r} is not 'error', 'skip' or 'update'")
    path = Path(path)
    image = store.image(image_id)
    cells = read_geojson(path)
    result = ImportResult(path, image_ids=[image_id])
    known = set(store.existing_cell_ids([c.cell_id for c in cells if c.cell_id]))
    if known and existing == "error":
        first = next(c for c in cells if c.cell_id in known)
        raise _err(path, first.index, f"cell id {first.cell_id} is already in the project "
                                      f"(import with existing='update' or 'skip')")
    # Every point that will be written lies in the image: new cells, and (an update) the new
    # positions of known cells, which must be cells of this image.
    records = {i: store.cell(i) for i in known} if existing == "update" else {}
    for c in cells:
        if c.cell_id in known and existing != "update":
            continue  # skipped
        record = records.get(c.cell_id) if c.cell_id is not None else None
        if record is not None and record.image_id != image_id:
            other = store.image(record.image_id)
            raise _err(path, c.index, f"cell id {c.cell_id} belongs to image {other.name}, "
                                      f"not {image.name} (a file is imported into one image)")
        if not (0 <= c.x <= image.width and 0 <= c.y <= image.height):
            what = f"cell {c.cell_id}: its new position" if record is not None else "point"
            raise _err(path, c.index, f"{what} ({c.x:g}, {c.y:g}) lies outside image "
                                      f"{image.name} ({image.width}x{image.height} pixels)")
    prob_classes = list(dict.fromkeys(k for c in cells for k in c.probs))

    with store.batch(f"Import {path.name}", action="import"):
        class_ids: dict[str, int] = {}
        for c in cells:
            if c.label is not None and c.label not in class_ids:
                cid = store.class_id(c.label)
                if cid is None:
                    cid = store.add_class(c.label, _color_hex(c.color))
                    result.classes_added.append(c.label)
                class_ids[c.label] = cid
        new = [c for c in cells if c.cell_id not in known]
        if new:
            fresh = iter(new_ids(sum(c.cell_id is None for c in new)))
            ids = store.add_cells(
                image_id,
                np.array([[c.x, c.y] for c in new], dtype=np.float64),
                [class_ids[c.label] if c.label else None for c in new],
                source=[c.label_source or source for c in new],
                ids=[c.cell_id or next(fresh) for c in new],
                review_status=[c.review_status or "unreviewed" for c in new],
                metadata=[c.metadata or None for c in new],
            )
            result.ids.extend(ids)
            if prob_classes and model_id is not None:
                result.model_id = _import_probabilities(store, path, prob_classes, new, ids,
                                                        model_id)
        if known and existing == "update":
            result.updated = _update_existing(store, [c for c in cells if c.cell_id in known],
                                              records, class_ids, source)
        result.skipped = len(known) if existing == "skip" else 0
    result.n_cells = len(result.ids)
    return result


def _import_probabilities(store, path: Path, classes: list[str], cells: list[GeoCell],
                          ids: list[str], model_id: int | str) -> int | None:
    probs = np.array([[c.probs.get(k, math.nan) for k in classes] for c in cells],
                     dtype=np.float32)
    complete = np.asarray(np.isfinite(probs).all(axis=1))
    if not complete.any():
        return None
    if model_id == "auto":
        # The files of one QuPath project (one per image) share one model.
        same = [m for m in store.models() if m.arch == IMPORTED_ARCH and m.classes == classes]
        model_id = same[-1].id if same else store.add_model(
            "Imported probabilities", None, IMPORTED_ARCH, classes,
            {"imported_from": str(path)})
    elif store.model(int(model_id)).classes != classes:
        raise ProjectError(f"{path}: its probabilities are for classes {classes}, model "
                           f"{model_id} has {store.model(int(model_id)).classes}")
    store.put_predictions(int(model_id), [i for i, ok in zip(ids, complete, strict=True) if ok],
                          probs[complete])
    return int(model_id)


def _update_existing(store, cells: list[GeoCell], records: dict[str, CellRecord],
                     class_ids: dict[str, int], source: str) -> int:
    changed = 0
    by_class: dict[int | None, list[str]] = {}
    moves: list[str] = []
    where: list[tuple[float, float]] = []
    for c in cells:
        cell_id = c.cell_id
        if cell_id is None:  # only cells already in the project come here, each with its id
            continue
        record = records[cell_id]
        new_class = class_ids[c.label] if c.label else None
        if record.class_id != new_class:
            by_class.setdefault(new_class, []).append(cell_id)
        if (record.x, record.y) != (c.x, c.y):
            moves.append(cell_id)
            where.append((c.x, c.y))
    for class_id, ids in by_class.items():
        changed += store.set_labels(ids, class_id, source=source)
    if moves:
        store.move_cells(moves, np.array(where, dtype=np.float64))
        changed += len(moves)
    return changed
