"""QuPath GeoJSON out: the cells of one image as QuPath objects, one FeatureCollection per file.

What QuPath 0.4, 0.5 and 0.6 read is set out in ``../shared/design/qupath-geojson.md``; this
writer follows it row by row (``tests/cellviewer/core/export/test_qupath_geojson.py`` checks
each row)::

    {"type": "FeatureCollection",
     "cellviewer": {"image": "sub/a.png"},          (default mode only; QuPath reads only
     "features": [                                    "features", so it never sees it)
      {"type": "Feature", "id": "<cell UUID>",
       "geometry": {"type": "Point", "coordinates": [x, y]},   (a Polygon for a cell that
                                                                has an outline)
       "properties": {"objectType": "detection",                (or "annotation")
                      "classification": {"name": "Tumour", "color": [200, 30, 30]},
                      "measurements": {"Prediction: Tumour": 0.93,
                                       "Prediction confidence": 0.93,
                                       "p_Tumour": 0.93, "p_Stroma": 0.07},
                      "metadata": {"labelSource": "manual", "reviewStatus": "checked"}}}]}

- **classification**: the label, the prediction, or (the default) the label where the cell has
  one, else the prediction. Every classification has a colour (QuPath 0.4-0.6 refuse
  ``{name}`` without one): the project class's, else one made from the name.
- **measurements**: the predicted class (in the name, "Prediction: <class>") and its
  confidence, and one ``p_<class>`` per model class; a cell without a prediction has none of
  them (QuPath shows a missing measurement as NaN; 0.4 refuses a whole file for one ``"NaN"``
  string, QuPath issue 1293). Numbers of the cell's own metadata come back as measurements.
- **metadata** (default mode), written once per feature: label source and review status (the
  way back into CellViewer), the predicted class, ``classifiedBy: prediction`` (and the
  ``label``, if any) where the classification is not the label, so that a re-import gives the
  labels, and the cell's own text metadata.
- **QuPath 0.4 mode** (``qupath_04``): only keys QuPath 0.4 reads; no metadata (0.4 drops it for
  detections and 0.5 logs a stack trace per detection for it) and no non-finite or text
  measurement, so the file opens in 0.4, 0.5 and 0.6 without a warning. A re-import then gives
  the cells and predictions, but not their label sources and review statuses, and takes every
  classification for a label (export with ``classification="label"`` to keep labels apart).
- **ids**: the cell's UUID (a cell id that is no UUID gets a stable UUID made from it).
- A cell with an outline (imported from a QuPath detection, kept in its metadata under
  ``outline``) goes out as its Polygon; its own point rides along as the measurements
  ``CellViewer x``/``CellViewer y`` so that a re-import puts the cell where it was.

:func:`write_feature_collection` writes any iterable of features, so other objects (regions as
annotations) are one more iterable passed as ``extra_features`` to :func:`export_geojson`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from cellviewer.core.store import ProjectStore

from .atomic import atomic_write
from .tables import image_names, resolve_model

CLASSIFICATIONS = ("label-else-prediction", "label", "prediction")
OBJECT_TYPES = ("detection", "annotation")
PROB_PREFIX = "p_"
PREDICTION_PREFIX = "Prediction: "
CONFIDENCE = "Prediction confidence"
POINT_X, POINT_Y = "CellViewer x", "CellViewer y"
# Metadata keys that are fields of the feature, not metadata: written where QuPath keeps them.
_FIELD_KEYS = ("outline", "plane", "name")
_OUR_METADATA = ("labelSource", "reviewStatus", "predictedClass", "classifiedBy", "label")
_ID_NAMESPACE = uuid.UUID("6f1c1a52-4b8e-4f3e-9d0e-6c2f0c0e11a7")  # for ids that are no UUID


@dataclass(frozen=True)
class GeoJsonOptions:
    """The choices of a GeoJSON export (the dialog's and the command line's)."""

    classification: str = "label-else-prediction"
    qupath_04: bool = False
    objects: str = "detection"

    def __post_init__(self) -> None:
        if self.classification not in CLASSIFICATIONS:
            raise ValueError(f"classification {self.classification!r} is not one of "
                             f"{', '.join(CLASSIFICATIONS)}")
        if self.objects not in OBJECT_TYPES:
            raise ValueError(f"objects {self.objects!r} is not one of {', '.join(OBJECT_TYPES)}")


def name_color(name: str) -> list[int]:
    """A colour for a class the project does not have (a model's class): the same for the
    same name in every file, never too dark to see."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return [64 + digest[k] % 192 for k in range(3)]


def hex_rgb(color: str) -> list[int]:
    return [int(color[k:k + 2], 16) for k in (1, 3, 5)]


def feature_id(cell_id: str) -> str:
    """The cell's UUID in canonical form (QuPath keeps UUIDs and ignores other ids)."""
    try:
        return str(uuid.UUID(cell_id))
    except ValueError:
        return str(uuid.uuid5(_ID_NAMESPACE, cell_id))


def cell_features(store: ProjectStore, image_id: int, *, model_id: int | str | None = "latest",
                  cell_ids: Sequence[str] | None = None,
                  options: GeoJsonOptions | None = None) -> Iterator[dict]:
    """The features of the cells of one image (only ``cell_ids`` when given), in order."""
    options = options or GeoJsonOptions()
    store.image(image_id)  # KeyError naming it
    table = store.cell_table([image_id], cell_ids)
    classes = {c.id: c for c in store.classes()}
    model = resolve_model(store, model_id)
    pred = store.predictions(model, table["rows"]) if model is not None else None
    for i, cell_id in enumerate(table["ids"]):
        label_id = int(table["class_id"][i])
        label = classes.get(label_id)
        predicted: tuple[str, list[int], float, np.ndarray] | None = None
        if pred is not None and pred.predicted[i] >= 0:
            k = int(pred.predicted[i])
            matched = classes.get(int(pred.predicted_class_id[i]))
            name = matched.name if matched is not None else pred.classes[k]
            color = hex_rgb(matched.color) if matched is not None else name_color(name)
            predicted = (name, color, _float32(pred.confidence[i]), pred.probs[i])
        yield _feature(str(cell_id), float(table["x"][i]), float(table["y"][i]),
                       (label.name, hex_rgb(label.color)) if label is not None else None,
                       predicted, pred.classes if pred is not None else [],
                       table["label_source"][i], table["review_status"][i],
                       _with_outline(table["metadata"][i] or {}, table["outline"][i]),
                       options)


def _feature(cell_id: str, x: float, y: float, label: tuple[str, list[int]] | None,
             predicted: tuple[str, list[int], float, np.ndarray] | None,
             model_classes: Sequence[str], label_source: str, review_status: str,
             extra: Mapping[str, Any], options: GeoJsonOptions) -> dict:
    props: dict[str, Any] = {"objectType": options.objects}
    if extra.get("name"):
        props["name"] = str(extra["name"])
    chosen = {"label": label,
              "prediction": predicted[:2] if predicted else None,
              "label-else-prediction": label or (predicted[:2] if predicted else None),
              }[options.classification]
    if chosen is not None:
        props["classification"] = {"name": chosen[0], "color": list(chosen[1])}

    measurements: dict[str, float | str] = {}
    for key, value in extra.items():  # the cell's own numbers go back as they came
        if key not in _FIELD_KEYS and _is_number(value):
            number = _json_number(value)
            if isinstance(number, float) or not options.qupath_04:
                measurements[str(key)] = number
    if predicted is not None:
        name, _, confidence, probs = predicted
        measurements[PREDICTION_PREFIX + name] = confidence
        measurements[CONFIDENCE] = confidence
        measurements.update({f"{PROB_PREFIX}{c}": _float32(probs[k])
                             for k, c in enumerate(model_classes)})

    geometry = _geometry(x, y, extra.get("outline"), extra.get("plane"))
    if geometry["type"] == "Polygon":
        measurements[POINT_X], measurements[POINT_Y] = x, y
    if measurements:
        props["measurements"] = measurements
    if not options.qupath_04:
        metadata = {str(k): _text(v) for k, v in extra.items()
                    if k not in _FIELD_KEYS and k not in _OUR_METADATA
                    and v is not None and not _is_number(v)}
        metadata.update(labelSource=label_source, reviewStatus=review_status)
        if predicted is not None:
            metadata["predictedClass"] = predicted[0]
        if chosen is not label:  # the way back takes the label (if any) from
            metadata["classifiedBy"] = "prediction"  # here, not from the classification
            if label is not None:
                metadata["label"] = label[0]
        props["metadata"] = metadata
    return {"type": "Feature", "id": feature_id(cell_id), "geometry": geometry,
            "properties": props}


def _with_outline(metadata: Mapping[str, Any], outline: str | None) -> Mapping[str, Any]:
    """The cell's metadata with its stored outline (the cells' ``outline`` column, a GeoJSON
    Polygon; an older import kept the ring in the metadata) as the ring to write."""
    if not outline:
        return metadata
    try:
        ring = json.loads(outline)["coordinates"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return metadata
    return {**metadata, "outline": ring}


def _geometry(x: float, y: float, outline: Any, plane: Any) -> dict:
    geometry: dict[str, Any] = {"type": "Point", "coordinates": [x, y]}
    ring = _ring(outline)
    if ring is not None:
        geometry = {"type": "Polygon", "coordinates": [ring]}
    if isinstance(plane, dict) and all(isinstance(plane.get(k), int) for k in ("c", "z", "t")):
        geometry["plane"] = {k: int(plane[k]) for k in ("c", "z", "t")}
    return geometry


def _ring(outline: Any) -> list[list[float]] | None:
    """A closed ring of finite [x, y] from a stored outline; None when it is no polygon."""
    try:
        ring = [[float(p[0]), float(p[1])] for p in outline]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    if len(ring) < 3 or not all(math.isfinite(v) for p in ring for v in p):
        return None
    if ring[0] != ring[-1]:
        ring.append(list(ring[0]))
    return ring


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value,
                                                                                       bool)


def _float32(value: Any) -> float:
    """The shortest decimal that reads back as the same float32 (probabilities)."""
    return float(str(np.float32(value)))


def _json_number(value: Any) -> float | str:
    """A finite number as itself; NaN and infinities as the strings QuPath 0.5+ writes."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def write_feature_collection(fh: IO[str], features: Iterable[dict], *,
                             header: Mapping[str, Any] | None = None) -> int:
    """Write ``features`` as one FeatureCollection, a feature per line (a large image's file is
    streamed, never held whole); ``header``: members written before ``features``. Returns the
    number of features written. ``allow_nan=False``: a bare NaN token (which QuPath 0.5 reads
    and the JSON standard does not) can never slip out."""
    head = {"type": "FeatureCollection", **(header or {})}
    fh.write(json.dumps(head, allow_nan=False, separators=(",", ":"))[:-1] + ',"features":[')
    n = 0
    for feature in features:
        fh.write(("," if n else "") + "\n"
                 + json.dumps(feature, allow_nan=False, separators=(",", ":")))
        n += 1
    fh.write("\n]}\n")
    return n


def export_geojson(store: ProjectStore, path: str | os.PathLike, image_id: int, *,
                   model_id: int | str | None = "latest", cell_ids: Sequence[str] | None = None,
                   classification: str = "label-else-prediction", qupath_04: bool = False,
                   objects: str = "detection", extra_features: Iterable[dict] = (),
                   image_base: str | os.PathLike | None = None, regions: bool = True) -> Path:
    """Write the cells of one image (and ``extra_features`` after them: e.g. regions as
    annotations) as a QuPath GeoJSON FeatureCollection, atomically; returns the path.

    ``model_id`` chooses whose predictions fill the measurements (and the classification of
    unlabelled cells); ``cell_ids`` keeps only those cells of the image (a selection). The
    image is named in the default mode (``"cellviewer": {"image": …}``, relative to
    ``image_base`` as in the cells CSV), so that files of two images of the same file name
    find their images again on import. ``regions``: the image's regions go first, as QuPath
    annotations (their uuids as ids, kind as classification, name; in the 0.4 mode without
    the metadata that carries their status)."""
    options = GeoJsonOptions(classification, qupath_04, objects)
    image = store.image(image_id)
    header: dict[str, Any] = {}
    if not qupath_04:
        name = image_names(store.images(), image_base).get(image.id, image.name)
        header["cellviewer"] = {"image": name}
    features = cell_features(store, image_id, model_id=model_id, cell_ids=cell_ids,
                             options=options)
    annotations: list[dict] = []
    if regions:
        from cellviewer.core.regions.export import region_features  # (shapely: when writing)

        annotations = region_features(store, image_id)
        if qupath_04:
            for feature in annotations:
                feature["properties"].pop("metadata", None)
    with atomic_write(path, project=store.path) as fh:
        write_feature_collection(fh, _chain(annotations, features, extra_features),
                                 header=header)
    return Path(path).expanduser().absolute()


def _chain(*parts: Iterable[dict]) -> Iterator[dict]:
    for part in parts:
        yield from part


def float32_text(value: Any) -> str:
    """A probability or score as text: the shortest decimal of its float32 (as the features
    write it), so a CSV and a GeoJSON of the same cells agree digit for digit."""
    return repr(_float32(value))


def point_features(ids: Sequence[str], xy: np.ndarray, *, scores: np.ndarray | None = None,
                   classes: Sequence[str] | None = None, probs: np.ndarray | None = None,
                   label_source: str = "detector",
                   options: GeoJsonOptions | None = None) -> Iterator[dict]:
    """Features of cells that are in no project (a cohort run's): points with ids, the
    detector's ``scores`` (a ``detection_score`` measurement) and a model's ``probs`` over
    ``classes`` (classified by the prediction, as :func:`cell_features` writes an unlabelled
    cell)."""
    options = options or GeoJsonOptions()
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    names = list(classes or [])
    for i, cell_id in enumerate(ids):
        predicted = None
        if probs is not None and names:
            p = np.asarray(probs[i])
            k = int(p.argmax())
            predicted = (names[k], name_color(names[k]), _float32(p[k]), p)
        extra = {} if scores is None else {"detection_score": _float32(scores[i])}
        yield _feature(str(cell_id), float(pts[i, 0]), float(pts[i, 1]), None, predicted,
                       names, label_source, "unreviewed", extra, options)
