"""Exporting results: the formats (a registry), the writers, and the export the app runs.

- :mod:`.registry`: :class:`Exporter` records and :func:`register`; a new format is one
  ``register`` call, and the app's dialog lists it without an edit.
- :mod:`.formats`: today's formats, registered on import: ``cells`` (CSV, one row per cell),
  ``summary`` (CSV per image and class), ``geojson`` (QuPath, one file per image).
- :mod:`.tables`: the two CSV writers.
- :mod:`.atomic`: :func:`atomic_write`, which every export file uses; :func:`check_target` (no
  export over the project's own files or a folder: :class:`ExportError`); the records of
  temporary files, so those of a killed export are removed later (:func:`remove_leftovers`).
- :mod:`.job`: which cells (project, image, selection), the file names, and :func:`run_export`.

>>> from cellviewer.core.export import run_export, select_cells
>>> sel = select_cells(store, "image", image_id=3)
>>> run_export(store, "out/cells.csv", ["cells", "geojson"], sel, {"model_id": "latest"})
"""

from . import formats as formats  # registers the built-in formats
from .atomic import ExportError, atomic_write, check_target, remove_leftovers
from .job import (
    ExportRequest,
    PlannedFile,
    default_base_path,
    describe_files,
    plan_files,
    run_export,
    run_request,
    select_cells,
)
from .registry import (
    SCOPE_IMAGE,
    SCOPE_PROJECT,
    SCOPE_SELECTION,
    SCOPES,
    Exporter,
    ExportOption,
    Progress,
    Selection,
    WriteFunction,
    exporters,
    get_exporter,
    register,
    unregister,
)
from .tables import (
    ALL_IMAGES_ROW,
    CELL_COLUMNS,
    TAIL_COLUMNS,
    UNLABELLED_ROW,
    export_cells_csv,
    export_summary_csv,
    image_names,
    resolve_model,
)

__all__ = [
    "ALL_IMAGES_ROW",
    "CELL_COLUMNS",
    "SCOPES",
    "SCOPE_IMAGE",
    "SCOPE_PROJECT",
    "SCOPE_SELECTION",
    "TAIL_COLUMNS",
    "UNLABELLED_ROW",
    "ExportError",
    "ExportOption",
    "ExportRequest",
    "Exporter",
    "PlannedFile",
    "Progress",
    "Selection",
    "WriteFunction",
    "atomic_write",
    "check_target",
    "default_base_path",
    "describe_files",
    "export_cells_csv",
    "export_summary_csv",
    "exporters",
    "get_exporter",
    "image_names",
    "plan_files",
    "register",
    "remove_leftovers",
    "resolve_model",
    "run_export",
    "run_request",
    "select_cells",
    "unregister",
]
