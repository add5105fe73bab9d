"""Regions leave the project two ways: a per-region summary CSV, and QuPath annotations.

The summary CSV (exporter ``regions``, :mod:`cellviewer.core.export.formats`) has one row per
region: ``image, region_id, name, kind, status, area_px, area_mm2, cells, proposed,
unlabelled, density_per_mm2, density_note``, then ``n_<class>`` and ``p_<class>`` (the class's
share of the region's labelled, accepted cells, the prior estimate) for every class of the
project. ``area_mm2`` and ``density_per_mm2`` are empty where the image has no pixel size, and
``density_note`` says so.

In the QuPath GeoJSON export (``cellviewer.core.io.geojson.export_geojson``) each region of
the image is a Feature as QuPath writes an annotation (``../shared/design/qupath-geojson.md``):
``id`` the region's uuid (QuPath keeps a UUID id, so the region is the same object after a
round trip), ``properties.objectType`` ``"annotation"``, ``name``, and ``classification``
``{"name": kind, "color": [r, g, b]}`` (QuPath refuses a classification without a colour);
the status travels as the string metadata ``regionStatus``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from cellviewer.core.export.atomic import atomic_write, check_target
from cellviewer.core.regions.summary import summarise_image
from cellviewer.core.store import PALETTE, ProjectStore

#: the colour QuPath shows for each offered kind (others: a stable colour from the palette)
KIND_COLOURS = {"tissue": "#3cb44b", "tumour": "#e6194b", "annotation area": "#ffe119",
                "other": "#a9a9a9"}
BASE_COLUMNS = ("image", "region_id", "name", "kind", "status", "area_px", "area_mm2", "cells",
                "proposed", "unlabelled", "density_per_mm2", "density_note")


def kind_colour(kind: str) -> tuple[int, int, int]:
    """The [r, g, b] a kind is shown in (QuPath needs a colour with every classification)."""
    colour = KIND_COLOURS.get(kind) or PALETTE[sum(kind.encode("utf-8")) % len(PALETTE)]
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def region_features(store: ProjectStore, image_id: int) -> list[dict]:
    """The regions of one image as QuPath annotation Features (see the module docstring)."""
    out = []
    for r in store.regions(image_id):
        props: dict = {"objectType": "annotation",
                       "classification": {"name": r.kind, "color": list(kind_colour(r.kind))},
                       "metadata": {"regionStatus": r.status}}
        if r.name:
            props["name"] = r.name
        out.append({"type": "Feature", "id": r.uuid, "geometry": r.geometry,
                    "properties": props})
    return out


def export_region_summary_csv(store: ProjectStore, path: str | os.PathLike, *,
                              image_ids: Sequence[int] | None = None,
                              image_base: str | os.PathLike | None = None) -> Path:
    """One row per region of ``image_ids`` (None: every image); written atomically."""
    from cellviewer.core.export.tables import image_names

    path = check_target(path, store.path)
    images = store.images() if image_ids is None else [store.image(i) for i in image_ids]
    names = image_names(images, image_base)
    classes = store.classes()
    header = [*BASE_COLUMNS, *(f"n_{c.name}" for c in classes),
              *(f"p_{c.name}" for c in classes)]
    with atomic_write(path, project=store.path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for image in images:
            for s in summarise_image(store, image.id):
                r = s.region
                writer.writerow([
                    names[image.id], r.uuid, r.name, r.kind, r.status, f"{s.area_px:.1f}",
                    "" if s.area_mm2 is None else f"{s.area_mm2:.6g}", s.n_cells,
                    s.n_proposed, s.n_unlabelled,
                    "" if s.density_per_mm2 is None else f"{s.density_per_mm2:.6g}",
                    s.density_note,
                    *(s.counts.get(c.id, 0) for c in classes),
                    *(f"{s.proportions.get(c.id, 0.0):.6g}" for c in classes)])
    return path


def is_annotation(feature: object) -> bool:
    """True for a QuPath annotation Feature (what :func:`region_features` writes): an
    importer of cells should turn it into a region (:func:`add_region_from_feature`), not a
    cell. QuPath reads a feature without ``objectType`` as an annotation too, but CellViewer's
    own cell files have always been read as cells, so only an explicit one counts here."""
    if not isinstance(feature, dict):
        return False
    props = feature.get("properties")
    return isinstance(props, dict) and props.get("objectType") == "annotation"


def add_region_from_feature(store: ProjectStore, image_id: int, feature: dict) -> str | None:
    """Bring back a region exported as a QuPath annotation: its uuid kept (so a round trip, or
    a merge, meets the same region), kind from the classification, status from
    ``regionStatus``. A region already in the project under that uuid is left as it is
    (returns None); a geometry that is no usable polygon raises RegionGeometryError."""
    from cellviewer.core.regions.geometry import check_polygon, from_geojson, to_geojson
    from cellviewer.core.store import REVIEW_STATUSES
    from cellviewer.core.store.ids import normalise_id

    props = feature.get("properties") or {}
    uuid = normalise_id(str(feature.get("id", "")))
    if uuid is not None:
        try:
            store.region(uuid)
            return None
        except KeyError:
            pass
    cls = props.get("classification")
    kind = (cls.get("name") if isinstance(cls, dict) else cls if isinstance(cls, str)
            else None) or "annotation area"
    given = props.get("metadata")
    meta: dict = given if isinstance(given, dict) else {}
    status = meta.get("regionStatus")
    status = status if status in REVIEW_STATUSES else "unreviewed"
    poly = check_polygon(from_geojson(feature.get("geometry") or {}))
    return store.add_region(image_id, to_geojson(poly), str(props.get("name") or ""),
                            str(kind), status, uuid=uuid)
