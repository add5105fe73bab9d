"""QuPath GeoJSON: cells to and from QuPath, one file per image.

Written as QuPath's ``exportObjectsToGeoJson(..., "FEATURE_COLLECTION")`` writes detections::

    {"type": "FeatureCollection", "features": [
      {"type": "Feature", "id": "<cell UUID>",
       "geometry": {"type": "Point", "coordinates": [x, y]},
       "properties": {"objectType": "detection",
                      "classification": {"name": "Lymphocyte", "color": [255, 0, 0]},
                      "measurements": {"p_Lymphocyte": 0.93, "p_Tumor": 0.05},
                      "metadata": {"labelSource": "manual", "reviewStatus": "checked"}}}]}

Coordinates are full-resolution pixels, origin at the top-left corner (our level-0 convention).
Unlabelled cells carry no ``classification``. ``measurements`` hold one model's class
probabilities (``p_<class>``; a cell without a prediction gets ``"NaN"``, as QuPath writes NaN),
which makes them visible in QuPath's measurement tables. ``metadata`` (string values, which
QuPath keeps per object) carries our label source and review status for the way back.

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

import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellviewer.core.export.tables import atomic_write, resolve_model
from cellviewer.core.io.files import open_regular
from cellviewer.core.io.messages import brief
from cellviewer.core.io.points_csv import ImportResult
from cellviewer.core.store import (
    LABEL_SOURCES,
    REVIEW_STATUSES,
    CellRecord,
    ProjectError,
    ProjectStore,
)
from cellviewer.core.store.ids import new_ids, normalise_id

PROB_PREFIX = "p_"
IMPORTED_ARCH = "imported"
_OUR_METADATA = ("labelSource", "reviewStatus")
# Larger integers are no pixel position or measurement (10**18 px is far beyond any slide) and
# would overflow a float (10**309) or Python's 4,300-digit int() limit.
MAX_INT_DIGITS = 18
_INT_BOUND = 10**MAX_INT_DIGITS
MAX_METADATA_DEPTH = 16  # lists/objects within a metadata value (QuPath's are flat strings)


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


def _small_int(value) -> bool:
    """Whether a JSON number is no integer of more than ``MAX_INT_DIGITS`` digits (checked where
    numbers are used, not by a parse hook: that would cost a Python call per integer)."""
    return not isinstance(value, int) or -_INT_BOUND < value < _INT_BOUND


def _load_json(path: Path):
    with open_regular(path) as fh:  # a FIFO or a device is refused, not read
        try:
            raw = fh.read()
        except OSError as e:
            raise _err(path, None, f"cannot read ({e.strerror})") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _err(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    del raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ProjectError(f"{path}, line {e.lineno}, column {e.colno}: not valid JSON "
                           f"({e.msg})") from e
    except ValueError as e:  # int()'s limit: an integer of more than 4,300 digits
        found = re.search(r"\d{4301,}", text)
        line = f", line {text.count(chr(10), 0, found.start()) + 1}" if found else ""
        raise ProjectError(f"{path}{line}: an integer of more than 4,300 digits, too large "
                           f"for a coordinate or measurement (at most {MAX_INT_DIGITS} digits)"
                           ) from e
    except RecursionError:
        # json's scanner recurses once per level: deeper than the interpreter's limit
        # (about 1,000) is no GeoJSON (a MultiPolygon's coordinates are 4 deep).
        raise _err(path, None, "nested too deeply (lists or objects about "
                               f"{sys.getrecursionlimit():,} levels deep; GeoJSON needs 6)"
                   ) from None


def read_geojson(path: str | os.PathLike) -> list[GeoCell]:
    """Parse and check a GeoJSON file into cells; ``ProjectError`` naming the file and feature."""
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise _err(path, None, "a FeatureCollection without a list of features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        raise _err(path, None, "not GeoJSON (expected a FeatureCollection, a Feature or a list "
                               "of features)")
    cells: list[GeoCell] = []
    seen: dict[str, int] = {}
    for index, feature in enumerate(features):
        for cell in _feature_cells(path, index, feature):
            if cell.cell_id is not None:
                if cell.cell_id in seen:
                    raise _err(path, index, f"id {cell.cell_id} already used by feature "
                                            f"{seen[cell.cell_id]}")
                seen[cell.cell_id] = index
            cells.append(cell)
    return cells


def _feature_cells(path: Path, index: int, feature) -> list[GeoCell]:
    if not isinstance(feature, dict) or feature.get("type", "Feature") != "Feature":
        raise _err(path, index, "not a GeoJSON Feature")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        raise _err(path, index, "no geometry")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise _err(path, index, "properties must be an object")
    points = _points(path, index, geometry)
    label, color = _classification(path, index, props.get("classification"))
    probs, other = _measurements(path, index, props.get("measurements"))
    given_meta = props.get("metadata")
    meta_in = given_meta if isinstance(given_meta, dict) else {}
    source = meta_in.get("labelSource")
    status = meta_in.get("reviewStatus")
    if source is not None and source not in LABEL_SOURCES:
        raise _err(path, index, f"labelSource {brief(source)} is not one of "
                                f"{', '.join(LABEL_SOURCES)}")
    if status is not None and status not in REVIEW_STATUSES:
        raise _err(path, index, f"reviewStatus {brief(status)} is not one of "
                                f"{', '.join(REVIEW_STATUSES)}")
    metadata = {_text(path, index, "a metadata key", k): _meta_value(path, index, k, v)
                for k, v in meta_in.items() if k not in _OUR_METADATA}
    metadata.update(other)
    name = props.get("name")
    if name:  # (an empty or null name is none, as before)
        if isinstance(name, bool) or not isinstance(name, str | int | float) \
                or not _small_int(name):
            raise _err(path, index, f"name {brief(name)} is not text")
        metadata["name"] = _text(path, index, "the name", str(name))
    raw_id = feature.get("id", props.get("id"))
    if raw_id is not None and (isinstance(raw_id, bool) or not _small_int(raw_id)
                               or not isinstance(raw_id, str | int | float)):
        raise _err(path, index, f"id {brief(raw_id)} is not a string or a number")
    cell_id = normalise_id(str(raw_id)) if raw_id is not None else None
    if raw_id is not None and (cell_id is None or len(points) > 1):
        metadata["geojson_id"] = _text(path, index, "the id", str(raw_id))
        cell_id = None
    return [
        GeoCell(index, x, y, label, color, cell_id, source, status, probs, dict(metadata))
        for x, y in points
    ]


def _text(path: Path, index: int, what: str | Callable[[], str], text: str) -> str:
    """``text`` when the project can store it: JSON's ``\\ud800`` escapes make strings with
    unpaired surrogates, which are no UTF-8 (SQLite refuses them). ``what`` names it in the
    message (a function: made only when needed)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        what = what if isinstance(what, str) else what()
        raise _err(path, index, f"{what} {brief(text)} holds an unpaired surrogate "
                                f"(a \\u{ord(text[e.start]):04x} escape without its pair), "
                                f"which is no text") from None
    return text


def _meta_value(path: Path, index: int, key: str, value, depth: int = 0):
    """A metadata value as the store can keep it: text checked, non-finite numbers as null (as
    the store does for top-level values), lists and objects at most ``MAX_METADATA_DEPTH``
    deep (so the recursion here, too, is bounded)."""
    if isinstance(value, str):
        return _text(path, index, lambda: f"the value of metadata {brief(key)}", value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not _small_int(value):
        raise _err(path, index, f"metadata {brief(key)} holds {brief(value)}, too large (more "
                                f"than {MAX_INT_DIGITS} digits)")
    if not isinstance(value, list | dict):
        return value
    if depth >= MAX_METADATA_DEPTH:
        raise _err(path, index, f"metadata {brief(key)} is nested too deeply (more than "
                                f"{MAX_METADATA_DEPTH} levels)")
    if isinstance(value, list):
        return [_meta_value(path, index, key, v, depth + 1) for v in value]
    return {_text(path, index, lambda: f"a key in metadata {brief(key)}", k):
            _meta_value(path, index, key, v, depth + 1) for k, v in value.items()}


def _is_json_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _xy(path: Path, index: int, pair) -> tuple[float, float]:
    if not isinstance(pair, list) or len(pair) < 2:
        raise _err(path, index, f"coordinates {brief(pair)} are not [x, y]")
    if not (_is_json_number(pair[0]) and _is_json_number(pair[1])):
        raise _err(path, index, f"coordinates {brief(pair)} are not numbers")
    if not (_small_int(pair[0]) and _small_int(pair[1])):  # (a float would overflow)
        raise _err(path, index, f"coordinates {brief(pair)} are too large (integers of more "
                                f"than {MAX_INT_DIGITS} digits)")
    x, y = float(pair[0]), float(pair[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _err(path, index, f"coordinates {brief(pair)} are not finite")
    return x, y


def _points(path: Path, index: int, geometry: dict) -> list[tuple[float, float]]:
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Point":
        return [_xy(path, index, coords)]
    if kind == "MultiPoint":
        if not isinstance(coords, list) or not coords:
            raise _err(path, index, "a MultiPoint without points")
        return [_xy(path, index, p) for p in coords]
    if kind in ("Polygon", "MultiPolygon"):
        polygons = [coords] if kind == "Polygon" else coords
        if not isinstance(polygons, list) or not polygons:
            raise _err(path, index, f"a {kind} without coordinates")
        return [_centroid(path, index, polygons)]
    raise _err(path, index, f"geometry {brief(kind)} is not a point, multipoint or polygon")


def _centroid(path: Path, index: int, polygons: list) -> tuple[float, float]:
    """Area-weighted centroid of the outer rings (holes ignored: cells have none); the mean
    vertex when the rings enclose no area. Computed relative to the first vertex (so large
    coordinates keep their precision), and refused when it overflows."""
    rings = []
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon or not isinstance(polygon[0], list):
            raise _err(path, index, f"polygon {brief(polygon)} is not a list of rings "
                                    f"(lists of [x, y])")
        ring = np.array([_xy(path, index, p) for p in polygon[0]], dtype=np.float64)
        if len(ring) < 3:
            raise _err(path, index, "a polygon ring needs at least 3 points")
        rings.append(ring)
    origin = rings[0][0]
    area_sum, cx, cy = 0.0, 0.0, 0.0
    with np.errstate(all="ignore"):  # an overflow shows as a non-finite result, checked below
        for ring in rings:
            x, y = ring[:, 0] - origin[0], ring[:, 1] - origin[1]
            x1, y1 = np.roll(x, -1), np.roll(y, -1)
            cross = x * y1 - x1 * y
            area_sum += cross.sum() / 2
            cx += ((x + x1) * cross).sum() / 6
            cy += ((y + y1) * cross).sum() / 6
        if math.isfinite(area_sum) and abs(area_sum) >= 1e-9:
            centre = (origin[0] + cx / area_sum, origin[1] + cy / area_sum)
        else:
            mean = np.concatenate(rings).mean(axis=0)
            centre = (float(mean[0]), float(mean[1]))
    if not (math.isfinite(centre[0]) and math.isfinite(centre[1])) or not math.isfinite(area_sum):
        raise _err(path, index, "the polygon's centroid cannot be computed (its coordinates "
                                "overflow)")
    return float(centre[0]), float(centre[1])


def _classification(path: Path, index: int, value) -> tuple[str | None, tuple | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return (_text(path, index, "the class name", value).strip() or None), None
    if not isinstance(value, dict):
        raise _err(path, index, "classification must be an object {name, color} or a string")
    name = value.get("name")
    names = value.get("names")
    if name is None and isinstance(names, list):
        if not all(isinstance(n, str) for n in names):
            raise _err(path, index, f"classification names {brief(names)} are not strings")
        name = ": ".join(n.strip() for n in names if n.strip())
    if name is not None and not isinstance(name, str):
        raise _err(path, index, f"classification name {brief(name)} is not a string")
    color = value.get("color")
    packed = value.get("colorRGB")
    if color is None and _is_json_number(packed) and isinstance(packed, int):  # QuPath 0.2
        if not _small_int(packed):
            raise _err(path, index, f"classification colorRGB {brief(packed)} is no colour")
        packed &= 0xFFFFFF
        color = [(packed >> 16) & 255, (packed >> 8) & 255, packed & 255]
    if color is not None:
        if (not isinstance(color, list) or len(color) != 3
                or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255
                           for c in color)):
            raise _err(path, index, f"classification color {brief(color)} is not [r, g, b] "
                                    f"(0-255)")
        color = tuple(color)
    # A name of spaces is no class (as a bare string of spaces already meant "unlabelled").
    label = _text(path, index, "the class name", name).strip() if name else ""
    return (label or None), (color if label else None)


def _measurements(path: Path, index: int, value) -> tuple[dict[str, float], dict]:
    if value is None:
        return {}, {}
    if isinstance(value, list):  # QuPath 0.2: [{"name": ..., "value": ...}]
        pairs = []
        for m in value:
            if not (isinstance(m, dict) and "name" in m and "value" in m):
                raise _err(path, index, "measurements must be {name: value}")
            if not isinstance(m["name"], str):
                raise _err(path, index, f"measurement name {brief(m['name'])} is not a string")
            pairs.append((m["name"], m["value"]))
        value = dict(pairs)
    if not isinstance(value, dict):
        raise _err(path, index, "measurements must be an object {name: value}")
    probs, other = {}, {}
    for name, raw in value.items():
        name = _text(path, index, "the measurement name", name)
        if isinstance(raw, str) and raw in ("NaN", "Infinity", "-Infinity"):
            number = float(raw.replace("Infinity", "inf"))
        elif _is_json_number(raw):
            if not _small_int(raw):  # (a float would overflow)
                raise _err(path, index, f"measurement {brief(name)} = {brief(raw)} is too "
                                        f"large (more than {MAX_INT_DIGITS} digits)")
            number = float(raw)
        elif raw is None:
            number = math.nan
        else:
            raise _err(path, index, f"measurement {brief(name)} = {brief(raw)} is not a number")
        if name.startswith(PROB_PREFIX) and name[len(PROB_PREFIX):].strip():
            probs[name[len(PROB_PREFIX):]] = number
        else:
            other[name] = number if math.isfinite(number) else None
    return probs, other


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


def export_geojson(store: ProjectStore, path: str | os.PathLike, image_id: int, *,
                   model_id: int | str | None = "latest",
                   cell_ids: Sequence[str] | None = None) -> Path:
    """Write the cells of one image as a QuPath GeoJSON FeatureCollection, atomically.
    ``model_id`` chooses whose probabilities become ``p_<class>`` measurements; ``cell_ids``
    keeps only those cells of the image (a selection, as the cells CSV does)."""
    path = Path(path)
    store.image(image_id)
    table = store.cell_table([image_id], cell_ids)
    classes = {c.id: c for c in store.classes()}
    model = resolve_model(store, model_id)
    pred = store.predictions(model, table["rows"]) if model is not None else None
    from cellviewer.core.regions.export import region_features  # (shapely: only when writing)

    regions = region_features(store, image_id)  # QuPath annotations, before the detections
    with atomic_write(path, project=store.path) as fh:
        fh.write('{"type":"FeatureCollection","features":[')
        for k, feature in enumerate(regions):
            fh.write(("," if k else "") + "\n"
                     + json.dumps(feature, allow_nan=False, separators=(",", ":")))
        for i, cell_id in enumerate(table["ids"]):
            props: dict = {"objectType": "detection"}
            cid = int(table["class_id"][i])
            if cid >= 0:
                cls = classes[cid]
                rgb = [int(cls.color[k:k + 2], 16) for k in (1, 3, 5)]
                props["classification"] = {"name": cls.name, "color": rgb}
            # The cell's own metadata goes back the way it came: numbers as measurements,
            # everything else as (string) metadata.
            extra = table["metadata"][i]
            measurements = {k: _json_number(v) for k, v in extra.items() if _is_number(v)}
            if pred is not None:
                measurements.update({
                    f"{PROB_PREFIX}{name}": _json_number(pred.probs[i, k], float32=True)
                    for k, name in enumerate(pred.classes)
                })
            if measurements:
                props["measurements"] = measurements
            metadata = {k: str(v) for k, v in extra.items()
                        if not _is_number(v) and v is not None and k not in _OUR_METADATA}
            metadata.update(labelSource=table["label_source"][i],
                            reviewStatus=table["review_status"][i])
            props["metadata"] = metadata
            feature = {
                "type": "Feature",
                "id": cell_id,
                "geometry": {"type": "Point",
                             "coordinates": [float(table["x"][i]), float(table["y"][i])]},
                "properties": props,
            }
            fh.write(("," if i or regions else "") + "\n"
                     + json.dumps(feature, allow_nan=False, separators=(",", ":")))
        fh.write("\n]}\n")
    return path


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.floating) and not isinstance(value, bool)


def _json_number(value, float32: bool = False) -> float | str:
    """QuPath writes NaN (which JSON lacks) as the string "NaN"; so do we. ``float32``: write
    the shortest decimal that reads back as the same float32 (probabilities)."""
    value = float(str(np.float32(value))) if float32 else float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
