"""GeoJSON cells and regions, as QuPath 0.4–0.6, CellViT and other tools write them.

Read: a FeatureCollection, an array of features, a single feature, or a bare geometry (which
QuPath reads as an annotation); plain, ``.geojson.gz`` or ``.zip`` (QuPath's compressed
exports). What each feature becomes is decided by one table:

================================  ============================================================
geometry                          becomes
================================  ============================================================
Point, MultiPoint                 one cell per point, whatever the ``objectType`` (QuPath's
                                  Points tool and CellViT write them as annotations)
Polygon, MultiPolygon, objectType one cell per polygon, at its centroid, the outline kept
``detection`` or ``cell``
Polygon, MultiPolygon, otherwise  a region (an annotation: tissue, a rectangle, an ellipse;
                                  its classification is the region's kind, its name its name),
                                  unless the file is CellViT output or the caller asks for
                                  ``polygons_as_cells``: then one cell per polygon
LineString, MultiLineString       skipped (counted, with the reason)
GeometryCollection                each member by this table
================================  ============================================================

CellViT output is recognised by its shape: every feature a MultiPolygon of one class, each
class once, and many small polygons (one per nucleus).

QuPath's properties: ``classification`` as ``{name, color}``, derived ``{names, color}``
(joined with ": " as QuPath names them), colours ``[r, g, b]`` or with alpha ``[r, g, b, a]``,
the 0.2/0.3 ``{name, colorRGB: int}`` or a bare string; ``measurements`` as an object (0.4+)
or a ``[{name, value}]`` list (before 0.4), non-finite values in every spelling QuPath reads
(the bare tokens ``NaN``/``Infinity`` of 0.4, the strings ``"NaN"``, ``"nan"``, ``"inf"``,
``"-Infinity"`` of 0.5+, numbers written as strings); ``metadata`` (0.5/0.6 write it twice per
feature: the last wins, as it holds the same); ``plane`` (kept in the cell's metadata when it
is not the default); ``childObjects`` (or ``children``): read and imported with their parent.
``p_<class>`` measurements are a model's probabilities; other measurements are metadata.
CellViewer's own export is read back as it was written: the image named in its header
(``"cellviewer": {"image": …}``), each cell at its own point beside its outline
(``CellViewer x/y``), and the prediction and confidence it derives from the probabilities
dropped (they come back from the probabilities).

Nothing in the file is trusted blindly: JSON nested deeper than Python can parse is refused,
and so are integers of more than ``MAX_INT_DIGITS`` digits (which would overflow a float);
coordinates must be finite numbers and a polygon's centroid a finite point; names are text
without unpaired surrogates (which SQLite cannot store); kept metadata is nested at most
``MAX_METADATA_DEPTH`` deep. Errors name the file and the feature (JSON syntax errors the line).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainer.formats.cell_rows import (
    MAX_FILE_BYTES,
    CellFileError,
    CellRow,
    ParsedFile,
    RegionRow,
    brief,
    decode_text,
    file_error,
    normal_uuid,
    read_bytes,
)
from trainer.formats.tables import LABEL_SOURCES, REVIEW_STATUSES

PROB_PREFIX = "p_"
# CellViewer's export (cellviewer/core/export/geojson_write.py): the prediction and its
# confidence (derived from the p_ probabilities), the cell's own point beside its outline,
# and the image the file is of (a foreign member of the FeatureCollection)
PREDICTION_PREFIX = "Prediction: "
CONFIDENCE = "Prediction confidence"
POINT_X, POINT_Y = "CellViewer x", "CellViewer y"
HEADER_KEY = "cellviewer"
OUR_METADATA = ("labelSource", "reviewStatus")
MAX_INT_DIGITS = 18
_INT_BOUND = 10**MAX_INT_DIGITS
MAX_METADATA_DEPTH = 16
MAX_CHILD_DEPTH = 32  # childObjects within childObjects
CELL_OBJECT_TYPES = ("detection", "cell")
GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                  "MultiPolygon", "GeometryCollection")
# CellViT: nuclei are small; a tissue annotation is not (40,000 px² is a 200 px square)
CELLVIT_MAX_MEDIAN_AREA = 40_000.0


def _err(path: Path, where: str | None, message: str) -> CellFileError:
    return file_error(path, where, message)


def small_int(value) -> bool:
    """Whether a JSON number is no integer of more than ``MAX_INT_DIGITS`` digits."""
    return not isinstance(value, int) or -_INT_BOUND < value < _INT_BOUND


def is_json_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Loading


def load_json_file(path: Path, notices: list[str]):
    """The JSON document of a ``.json``/``.geojson`` file, a gzipped one or the first JSON
    entry of a ``.zip`` (as QuPath writes them)."""
    raw = read_bytes(path)
    name = path.name.lower()
    if name.endswith(".gz"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(MAX_FILE_BYTES + 1)
        except (OSError, EOFError, ValueError) as e:
            raise _err(path, None, f"not a gzip file ({e})") from None
    elif name.endswith(".zip"):
        raw = _zip_entry(path, raw, notices)
    if len(raw) > MAX_FILE_BYTES:
        raise _err(path, None, "more than 4 GiB of JSON: no cell file")
    text = decode_text(path, raw, notices)
    del raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CellFileError(f"{path}, line {e.lineno}, column {e.colno}: not valid JSON "
                            f"({e.msg})") from None
    except RecursionError:
        raise _err(path, None, "nested too deeply (lists or objects about "
                               f"{sys.getrecursionlimit():,} levels deep; GeoJSON needs 6)"
                   ) from None
    except ValueError:  # int()'s limit: an integer of more than 4,300 digits
        found = re.search(r"\d{4301,}", text)
        line = f", line {text.count(chr(10), 0, found.start()) + 1}" if found else ""
        raise CellFileError(f"{path}{line}: an integer of more than 4,300 digits, too large "
                            f"for a coordinate or measurement (at most {MAX_INT_DIGITS} "
                            f"digits)") from None


def _zip_entry(path: Path, raw: bytes, notices: list[str]) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = [n for n in archive.namelist()
                     if n.lower().endswith((".geojson", ".json")) and not n.endswith("/")]
            if not names:
                raise _err(path, None, "a zip file without a .geojson or .json entry")
            if len(names) > 1:
                notices.append(f"{path}: {len(names)} JSON entries; read {names[0]}")
            info = archive.getinfo(names[0])
            if info.file_size > MAX_FILE_BYTES:
                raise _err(path, None, f"{names[0]}: more than 4 GiB: no cell file")
            with archive.open(info) as fh:
                return fh.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError,
            EOFError, ValueError) as e:
        raise _err(path, None, f"not a readable zip file ({e})") from None


# ---------------------------------------------------------------------------------------------
# Reading


def read_geojson(path, *, polygons_as_cells: bool = False) -> ParsedFile:
    """Read a GeoJSON file (plain, ``.gz`` or ``.zip``) into cells and regions."""
    path = Path(path)
    notices: list[str] = []
    parsed = read_geojson_data(path, load_json_file(path, notices),
                               polygons_as_cells=polygons_as_cells)
    parsed.notices[:0] = notices
    return parsed


def _features(path: Path, data, parsed: ParsedFile) -> list:
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise _err(path, None, "a FeatureCollection without a list of features")
        return features
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    if isinstance(data, dict) and data.get("type") in GEOMETRY_TYPES:
        parsed.notices.append(f"{path}: a bare geometry, read as one annotation")
        return [{"type": "Feature", "geometry": data, "properties": {}}]
    if isinstance(data, list):
        return data
    raise _err(path, None, "not GeoJSON (expected a FeatureCollection, a Feature, a list of "
                           "features or a geometry)")


def read_geojson_data(path: Path, data, *, polygons_as_cells: bool = False) -> ParsedFile:
    """Cells and regions of a parsed GeoJSON document (see the module doc)."""
    parsed = ParsedFile(path, "GeoJSON", image_hint=_stem(path))
    features = _features(path, data, parsed)
    cellvit = is_cellvit(features)
    if cellvit:
        parsed.format = "CellViT GeoJSON"
        parsed.notices.append(f"{path}: CellViT output (one MultiPolygon per class): one cell "
                              f"per polygon")
    elif any(isinstance(f, dict) and isinstance(f.get("properties"), dict)
             and "objectType" in f["properties"] for f in features):
        parsed.format = "QuPath GeoJSON"
    seen: dict[str, str] = {}
    reader = _Reader(path, parsed, polygons_as_cells or cellvit, seen)
    for index, feature in enumerate(features):
        reader.feature(f"feature {index}", feature, 0)
    if any(r.probs for r in parsed.rows):
        parsed.prediction_model = path.name
    header = data.get(HEADER_KEY) if isinstance(data, dict) else None
    image = header.get("image") if isinstance(header, dict) else None
    if isinstance(image, str) and image.strip():  # CellViewer names the file's image
        image = _text(path, "the header", "the image name", image)
        for row in parsed.rows:
            row.image = row.image or image
        for region in parsed.regions:
            region.image = region.image or image
    return parsed


def _inside_box(point: tuple, ring: np.ndarray) -> bool:
    """Whether ``point`` (two numbers or Nones) lies in the ring's bounding box: the cell's own
    point beside its outline is kept, unless the outline was moved elsewhere since."""
    if not all(isinstance(v, float) and math.isfinite(v) for v in point):
        return False
    low, high = ring.min(axis=0), ring.max(axis=0)
    return bool(low[0] <= point[0] <= high[0] and low[1] <= point[1] <= high[1])


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".geojson.gz", ".json.gz", ".geojson.zip", ".zip", ".geojson", ".json"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_cellvit(features: list) -> bool:
    """CellViT's ``cells.geojson``: every feature a MultiPolygon, each of another class, with
    small polygons (nuclei), more of them than features."""
    if not features:
        return False
    names: set[str] = set()
    areas: list[float] = []
    for f in features:
        if not isinstance(f, dict) or not isinstance(f.get("geometry"), dict):
            return False
        geometry = f["geometry"]
        props: dict = f["properties"] if isinstance(f.get("properties"), dict) else {}
        if geometry.get("type") != "MultiPolygon" or props.get("objectType") in \
                CELL_OBJECT_TYPES:
            return False
        cls = props.get("classification")
        name = cls.get("name") if isinstance(cls, dict) else cls
        if not isinstance(name, str) or name in names:
            return False
        names.add(name)
        coords = geometry.get("coordinates")
        if not isinstance(coords, list):
            return False
        for polygon in coords[:50]:
            try:
                ring = np.asarray(polygon[0], dtype=np.float64)[:, :2]
                span = ring.max(axis=0) - ring.min(axis=0)
                areas.append(float(span[0] * span[1]))
            except (TypeError, ValueError, IndexError):
                return False
    n_parts = sum(len(f["geometry"]["coordinates"]) for f in features)
    return n_parts >= 2 * len(features) and bool(areas) and \
        float(np.median(areas)) <= CELLVIT_MAX_MEDIAN_AREA


class _Reader:
    def __init__(self, path: Path, parsed: ParsedFile, polygons_as_cells: bool,
                 seen: dict[str, str]) -> None:
        self.path, self.parsed = path, parsed
        self.polygons_as_cells = polygons_as_cells
        self.seen = seen

    def err(self, where: str, message: str) -> CellFileError:
        return _err(self.path, where, message)

    def feature(self, where: str, feature, depth: int) -> None:
        if not isinstance(feature, dict) or feature.get("type", "Feature") != "Feature":
            raise self.err(where, "not a GeoJSON Feature")
        props = feature.get("properties")
        props = {} if props is None else props
        if not isinstance(props, dict):
            raise self.err(where, "properties must be an object")
        object_type = props.get("objectType", props.get("object_type", props.get("type")))
        object_type = object_type if isinstance(object_type, str) else "annotation"
        geometry = feature.get("geometry")
        if geometry is None:
            if object_type != "root":
                self.parsed.skipped.append((where, "no geometry"))
        elif not isinstance(geometry, dict):
            raise self.err(where, "geometry must be an object")
        elif object_type == "root":
            self.parsed.skipped.append((where, "QuPath's root object"))
        else:
            self.geometry(where, feature, props, object_type, geometry)
        children = props.get("childObjects", props.get("children"))
        if children is not None:
            if not isinstance(children, list):
                raise self.err(where, "childObjects must be a list of features")
            if depth >= MAX_CHILD_DEPTH:
                raise self.err(where, f"child objects nested more than {MAX_CHILD_DEPTH} deep")
            for k, child in enumerate(children):
                self.feature(f"{where}, child {k}", child, depth + 1)

    def geometry(self, where: str, feature: dict, props: dict, object_type: str,
                 geometry: dict) -> None:
        kind = geometry.get("type")
        if kind == "GeometryCollection":
            members = geometry.get("geometries")
            if not isinstance(members, list):
                raise self.err(where, "a GeometryCollection without a list of geometries")
            for k, member in enumerate(members):
                if not isinstance(member, dict):
                    raise self.err(where, f"member {k} of the GeometryCollection is no "
                                          f"geometry")
                self.geometry(f"{where}, member {k}", feature, props, object_type,
                              {**member, "plane": geometry.get("plane")})
            return
        if kind in ("LineString", "MultiLineString"):
            self.parsed.skipped.append((where, "a line (not a cell or a region)"))
            return
        coords = geometry.get("coordinates")
        points: list[tuple[str, tuple[float, float], np.ndarray | None]]
        if kind == "Point":
            points = [(where, _xy(self.path, where, coords), None)]
        elif kind == "MultiPoint":
            if not isinstance(coords, list) or not coords:
                raise self.err(where, "a MultiPoint without points")
            points = [(where if len(coords) == 1 else f"{where}, point {k}",
                       _xy(self.path, where, p), None) for k, p in enumerate(coords)]
        elif kind in ("Polygon", "MultiPolygon"):
            polygons = [coords] if kind == "Polygon" else coords
            if not isinstance(polygons, list) or not polygons:
                raise self.err(where, f"a {kind} without coordinates")
            rings = [_outer_ring(self.path, where, polygon) for polygon in polygons]
            if object_type not in CELL_OBJECT_TYPES and not self.polygons_as_cells:
                self.region(where, feature, props, geometry)
                return
            points = [(where if len(rings) == 1 else f"{where}, polygon {k}",
                       _centroid(self.path, where, ring), ring) for k, ring in enumerate(rings)]
        else:
            raise self.err(where, f"geometry {brief(kind)} is not a point, line, polygon or "
                                  f"collection")
        base = self.properties(where, feature, props, geometry)
        kept = (base.metadata.pop(POINT_X, None), base.metadata.pop(POINT_Y, None))
        if len(points) == 1 and points[0][2] is not None and _inside_box(kept, points[0][2]):
            points = [(points[0][0], (float(kept[0]), float(kept[1])), points[0][2])]
        many = len(points) > 1
        for part_where, (x, y), ring in points:
            cell = CellRow(x, y, part_where, None, base.label,
                           ring.tolist() if ring is not None else None, dict(base.metadata),
                           None if many else base.cell_id, base.label_source,
                           base.review_status, base.color,
                           dict(base.probs) if base.probs else None)
            if many and base.cell_id is not None:
                cell.metadata["geojson_id"] = base.cell_id
            if cell.cell_id is not None:
                if cell.cell_id in self.seen:
                    raise self.err(where, f"id {cell.cell_id} already used by "
                                          f"{self.seen[cell.cell_id]}")
                self.seen[cell.cell_id] = where
            self.parsed.rows.append(cell)

    def region(self, where: str, feature: dict, props: dict, geometry: dict) -> None:
        base = self.properties(where, feature, props, geometry)
        name = base.metadata.pop("name", None)
        clean = {"type": geometry["type"], "coordinates": geometry["coordinates"]}
        if geometry.get("isEllipse"):
            base.metadata["isEllipse"] = True
        self.parsed.regions.append(RegionRow(where, clean, None, base.label, name,
                                             base.cell_id, base.color, base.metadata))

    def properties(self, where: str, feature: dict, props: dict, geometry: dict) -> CellRow:
        """What every part of one feature shares (as a CellRow without a position)."""
        path = self.path
        label, color = _classification(path, where, props.get("classification"))
        probs, other = _measurements(path, where, props.get("measurements"))
        given_meta = props.get("metadata")
        meta_in = given_meta if isinstance(given_meta, dict) else {}
        source = meta_in.get("labelSource")
        status = meta_in.get("reviewStatus")
        if source is not None and source not in LABEL_SOURCES:
            raise self.err(where, f"labelSource {brief(source)} is not one of "
                                  f"{', '.join(LABEL_SOURCES)}")
        if status is not None and status not in REVIEW_STATUSES:
            raise self.err(where, f"reviewStatus {brief(status)} is not one of "
                                  f"{', '.join(REVIEW_STATUSES)}")
        metadata = {_text(path, where, "a metadata key", k): _meta_value(path, where, k, v)
                    for k, v in meta_in.items() if k not in OUR_METADATA}
        if probs:  # what CellViewer derives from the probabilities is not the cell's own
            other = {k: v for k, v in other.items()
                     if k != CONFIDENCE and not k.startswith(PREDICTION_PREFIX)}
            metadata.pop("predictedClass", None)
        if meta_in.get("classifiedBy") == "prediction":  # CellViewer's: the label is apart
            given = metadata.pop("label", None)
            label = _text(path, where, "the label", given) if isinstance(given, str) else None
            color = None
        metadata.pop("classifiedBy", None)
        metadata.update(other)
        name = props.get("name")
        if name:
            if isinstance(name, bool) or not isinstance(name, str | int | float) \
                    or not small_int(name):
                raise self.err(where, f"name {brief(name)} is not text")
            metadata["name"] = _text(path, where, "the name", str(name))
        plane = geometry.get("plane")
        if isinstance(plane, dict) and any(plane.get(k, d) != d for k, d in
                                           (("c", -1), ("z", 0), ("t", 0))):
            metadata["plane"] = _meta_value(path, where, "plane", plane)
        raw_id = feature.get("id", props.get("id"))
        if raw_id is not None and (isinstance(raw_id, bool) or not small_int(raw_id)
                                   or not isinstance(raw_id, str | int | float)):
            raise self.err(where, f"id {brief(raw_id)} is not a string or a number")
        cell_id = normal_uuid(str(raw_id)) if raw_id is not None else None
        if raw_id is not None and cell_id is None:
            metadata["geojson_id"] = _text(path, where, "the id", str(raw_id))
        return CellRow(0.0, 0.0, where, None, label, None, metadata, cell_id, source, status,
                       color, probs or None)


def _text(path: Path, where: str, what: str | Callable[[], str], text: str) -> str:
    """``text`` when the project can store it: JSON's ``\\ud800`` escapes make strings with
    unpaired surrogates, which are no UTF-8 (SQLite refuses them)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        what = what if isinstance(what, str) else what()
        raise _err(path, where, f"{what} {brief(text)} holds an unpaired surrogate "
                                f"(a \\u{ord(text[e.start]):04x} escape without its pair), "
                                f"which is no text") from None
    return text


def _meta_value(path: Path, where: str, key: str, value, depth: int = 0):
    """A metadata value as the store can keep it: text checked, non-finite numbers as null,
    lists and objects at most ``MAX_METADATA_DEPTH`` deep."""
    if isinstance(value, str):
        return _text(path, where, lambda: f"the value of metadata {brief(key)}", value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not small_int(value):
        raise _err(path, where, f"metadata {brief(key)} holds {brief(value)}, too large (more "
                                f"than {MAX_INT_DIGITS} digits)")
    if not isinstance(value, list | dict):
        return value
    if depth >= MAX_METADATA_DEPTH:
        raise _err(path, where, f"metadata {brief(key)} is nested too deeply (more than "
                                f"{MAX_METADATA_DEPTH} levels)")
    if isinstance(value, list):
        return [_meta_value(path, where, key, v, depth + 1) for v in value]
    return {_text(path, where, lambda: f"a key in metadata {brief(key)}", k):
            _meta_value(path, where, key, v, depth + 1) for k, v in value.items()}


def _xy(path: Path, where: str, pair) -> tuple[float, float]:
    if not isinstance(pair, list) or len(pair) < 2:
        raise _err(path, where, f"coordinates {brief(pair)} are not [x, y]")
    if not (is_json_number(pair[0]) and is_json_number(pair[1])):
        raise _err(path, where, f"coordinates {brief(pair)} are not numbers")
    if not (small_int(pair[0]) and small_int(pair[1])):
        raise _err(path, where, f"coordinates {brief(pair)} are too large (integers of more "
                                f"than {MAX_INT_DIGITS} digits)")
    x, y = float(pair[0]), float(pair[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _err(path, where, f"coordinates {brief(pair)} are not finite")
    return x, y


def _outer_ring(path: Path, where: str, polygon) -> np.ndarray:
    if not isinstance(polygon, list) or not polygon or not isinstance(polygon[0], list):
        raise _err(path, where, f"polygon {brief(polygon)} is not a list of rings "
                                f"(lists of [x, y])")
    for ring in polygon[1:]:  # holes: checked, not kept
        if not isinstance(ring, list):
            raise _err(path, where, f"polygon ring {brief(ring)} is not a list of [x, y]")
        for p in ring:
            _xy(path, where, p)
    ring = np.array([_xy(path, where, p) for p in polygon[0]], dtype=np.float64)
    if len(ring) < 3:
        raise _err(path, where, "a polygon ring needs at least 3 points")
    return ring


def _centroid(path: Path, where: str, ring: np.ndarray) -> tuple[float, float]:
    """Area-weighted centroid of an outer ring; the mean vertex when it encloses no area.
    Computed relative to the first vertex (large coordinates keep their precision), and
    refused when it overflows."""
    origin = ring[0]
    with np.errstate(all="ignore"):  # an overflow shows as a non-finite result, checked below
        x, y = ring[:, 0] - origin[0], ring[:, 1] - origin[1]
        x1, y1 = np.roll(x, -1), np.roll(y, -1)
        cross = x * y1 - x1 * y
        area = cross.sum() / 2
        if math.isfinite(area) and abs(area) >= 1e-9:
            centre = (origin[0] + ((x + x1) * cross).sum() / 6 / area,
                      origin[1] + ((y + y1) * cross).sum() / 6 / area)
        else:
            mean = ring.mean(axis=0)
            centre = (float(mean[0]), float(mean[1]))
    if not (math.isfinite(centre[0]) and math.isfinite(centre[1])) or not math.isfinite(area):
        raise _err(path, where, "the polygon's centroid cannot be computed (its coordinates "
                                "overflow)")
    return float(centre[0]), float(centre[1])


def _classification(path: Path, where: str, value) -> tuple[str | None, tuple | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return (_text(path, where, "the class name", value).strip() or None), None
    if not isinstance(value, dict):
        raise _err(path, where, "classification must be an object {name, color} or a string")
    name = value.get("name")
    names = value.get("names")
    if name is None and isinstance(names, list):
        if not all(isinstance(n, str) for n in names):
            raise _err(path, where, f"classification names {brief(names)} are not strings")
        name = ": ".join(n.strip() for n in names if n.strip())  # QuPath's derived classes
    if name is not None and not isinstance(name, str):
        raise _err(path, where, f"classification name {brief(name)} is not a string")
    color = _color(path, where, value.get("color"), value.get("colorRGB"))
    label = _text(path, where, "the class name", name).strip() if name else ""
    return (label or None), (color if label else None)


def _color(path: Path, where: str, color, packed) -> tuple[int, int, int] | None:
    """``[r, g, b]``, ``[r, g, b, a]`` (QuPath when the alpha is neither 0 nor 255), or a
    packed (A)RGB integer (QuPath 0.2's ``colorRGB``, negative with an alpha byte)."""
    field = "color"
    if color is None and packed is not None:
        color, field = packed, "colorRGB"
    if color is None:
        return None
    if is_json_number(color) and isinstance(color, int):
        if not small_int(color):
            raise _err(path, where, f"classification {field} {brief(color)} is no colour")
        rgb = color & 0xFFFFFF
        return (rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255
    if (not isinstance(color, list) or len(color) not in (3, 4)
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255
                       for c in color)):
        raise _err(path, where, f"classification color {brief(color)} is not [r, g, b] or "
                                f"[r, g, b, a] (0-255)")
    return color[0], color[1], color[2]


_NON_FINITE = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf,
               "+inf": math.inf, "infinity": math.inf, "+infinity": math.inf,
               "-inf": -math.inf, "-infinity": -math.inf}


def measurement_number(text: str) -> float | None:
    """A number written as a string, in every spelling QuPath 0.5+ reads (Java's
    ``Double.parseDouble`` and ``nan``/``inf`` in any case); None when it is none."""
    s = text.strip()
    if s.lower() in _NON_FINITE:
        return _NON_FINITE[s.lower()]
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[dDfF]?", s):
        return None
    value = float(s.rstrip("dDfF"))
    return value


def _measurements(path: Path, where: str, value) -> tuple[dict[str, float], dict]:
    if value is None:
        return {}, {}
    if isinstance(value, list):  # before QuPath 0.4: [{"name": ..., "value": ...}]
        pairs = []
        for m in value:
            if not (isinstance(m, dict) and "name" in m and "value" in m):
                raise _err(path, where, "measurements must be {name: value}")
            if not isinstance(m["name"], str):
                raise _err(path, where, f"measurement name {brief(m['name'])} is not a string")
            pairs.append((m["name"], m["value"]))
        value = dict(pairs)
    if not isinstance(value, dict):
        raise _err(path, where, "measurements must be an object {name: value}")
    probs, other = {}, {}
    for name, raw in value.items():
        name = _text(path, where, "the measurement name", name)
        if isinstance(raw, str):
            number = measurement_number(raw)
            if number is None:
                raise _err(path, where, f"measurement {brief(name)} = {brief(raw)} is not a "
                                        f"number")
        elif is_json_number(raw):
            if not small_int(raw):
                raise _err(path, where, f"measurement {brief(name)} = {brief(raw)} is too "
                                        f"large (more than {MAX_INT_DIGITS} digits)")
            number = float(raw)
        elif raw is None:
            number = math.nan
        else:
            raise _err(path, where, f"measurement {brief(name)} = {brief(raw)} is not a number")
        if name.startswith(PROB_PREFIX) and name[len(PROB_PREFIX):].strip():
            probs[name[len(PROB_PREFIX):]] = number
        else:
            other[name] = number if math.isfinite(number) else None
    return probs, other
