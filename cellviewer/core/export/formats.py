"""Today's export formats, registered on import: the cells CSV, the summary CSV, the regions
CSV, QuPath GeoJSON.

Each is a thin adapter from the exporter's ``write`` signature to the writer that already
existed (:mod:`.tables`, :mod:`.geojson_write`); those are imported when a file is
written, so listing the formats costs nothing (no pandas) and :mod:`cellviewer.core.io.geojson`,
which imports :mod:`.tables`, can never meet a half-imported package.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .registry import Exporter, ExportOption, Progress, Selection, register

if TYPE_CHECKING:
    from cellviewer.core.store import ProjectStore

MODEL_OPTION = ExportOption(
    "model_id", "latest",
    'whose predictions fill the prediction columns: "latest" (the newest model with '
    "predictions), a model id, or None (labels only)")
IMAGE_BASE_OPTION = ExportOption(
    "image_base", None,
    "the folder image names are relative to (default: the folder all images share)")
METADATA_OPTION = ExportOption(
    "include_metadata", True, "add the cells' own metadata (e.g. the imported CSV's columns)")
CLASSIFICATION_OPTION = ExportOption(
    "classification", "label-else-prediction",
    'what QuPath shows as the class: "label", "prediction", or "label-else-prediction" (the '
    "label where the cell has one, else the prediction)")
QUPATH_04_OPTION = ExportOption(
    "qupath_04", False,
    "only what QuPath 0.4 reads: no metadata, no NaN or text measurements (opens in 0.4, 0.5 "
    "and 0.6 without a warning; a re-import loses label sources and review statuses)")
OBJECTS_OPTION = ExportOption(
    "objects", "detection", 'QuPath object type of the cells: "detection" or "annotation"')
SEP_OPTION = ExportOption(
    "sep", None, "the column separator (default: a tab for .tsv/.txt, else a comma)")


def _cell_ids(selection: Selection) -> list[str] | None:
    return list(selection.cell_ids) if selection.cell_ids is not None else None


def _image_ids(selection: Selection) -> list[int] | None:
    return list(selection.image_ids) if selection.image_ids is not None else None


def write_cells_csv(store: ProjectStore, path: Path, *, selection: Selection,
                    options: Mapping[str, Any], progress: Progress | None = None) -> Path:
    from .tables import export_cells_csv

    return export_cells_csv(store, path, model_id=options["model_id"],
                            image_ids=_image_ids(selection), cell_ids=_cell_ids(selection),
                            image_base=options["image_base"],
                            include_metadata=options["include_metadata"], sep=options["sep"])


def write_summary_csv(store: ProjectStore, path: Path, *, selection: Selection,
                      options: Mapping[str, Any], progress: Progress | None = None) -> Path:
    from .tables import export_summary_csv

    return export_summary_csv(store, path, model_id=options["model_id"],
                              image_ids=_image_ids(selection), cell_ids=_cell_ids(selection),
                              image_base=options["image_base"])


def write_region_summary(store: ProjectStore, path: Path, *, selection: Selection,
                         options: Mapping[str, Any], progress: Progress | None = None) -> Path:
    from cellviewer.core.regions.export import export_region_summary_csv

    return export_region_summary_csv(store, path, image_ids=_image_ids(selection),
                                     image_base=options["image_base"])


def write_geojson(store: ProjectStore, path: Path, *, selection: Selection,
                  options: Mapping[str, Any], progress: Progress | None = None) -> Path:
    from .geojson_write import export_geojson

    if selection.image_ids is None or len(selection.image_ids) != 1:
        raise ValueError("a GeoJSON file holds the cells of one image")
    return export_geojson(store, path, selection.image_ids[0], model_id=options["model_id"],
                          cell_ids=_cell_ids(selection),
                          classification=options["classification"],
                          qupath_04=bool(options["qupath_04"]), objects=options["objects"],
                          image_base=options["image_base"])


CELLS_CSV = register(Exporter(
    name="cells", title="Cells CSV (one row per cell)", suffixes=(".csv", ".tsv", ".txt"),
    description="one row per cell: position, label, label source, review status, prediction, "
                "confidence, one probability column per class, model id, who and when",
    write=write_cells_csv, options=(MODEL_OPTION, IMAGE_BASE_OPTION, METADATA_OPTION, SEP_OPTION),
    default_on=True))
SUMMARY_CSV = register(Exporter(
    name="summary", title="Summary CSV per image and class (counts, agreement)",
    suffixes=(".csv",), name_tail="_summary",
    description="per image and class: cells, reviewed, with a prediction, predicted, agreeing "
                "with the label, agreement; plus totals over all images",
    write=write_summary_csv, options=(MODEL_OPTION, IMAGE_BASE_OPTION), default_on=True))
GEOJSON = register(Exporter(
    name="geojson", title="QuPath GeoJSON (one file per image)", suffixes=(".geojson",),
    description="the cells of each image as QuPath detections or annotations, classified by "
                "their label or prediction, with the prediction, its confidence and the "
                "model's probabilities as measurements, and its regions as annotations",
    write=write_geojson,
    options=(MODEL_OPTION, CLASSIFICATION_OPTION, QUPATH_04_OPTION, OBJECTS_OPTION,
             IMAGE_BASE_OPTION),
    per_image=True))
REGIONS_CSV = register(Exporter(
    name="regions", title="Regions CSV (one row per region: counts, proportions, density)",
    suffixes=(".csv",), name_tail="_regions",
    description="per region: image, id, name, kind, status, area, cells, proposals, "
                "unlabelled, density per mm², and per class its count and proportion",
    write=write_region_summary, options=(IMAGE_BASE_OPTION,)))
