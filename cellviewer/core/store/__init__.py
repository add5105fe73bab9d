"""The project store: one SQLite file per project (see ``project.py``, ``schema.py`` and
``undo.py``). Qt-free, and free of pandas, so the GUI can import it on start-up."""

from cellviewer.core.store.common import PALETTE, SUFFIX, UNLABELLED, current_user
from cellviewer.core.store.project import ProjectStore
from cellviewer.core.store.records import (
    LABEL_SOURCES,
    REVIEW_STATUSES,
    CellArrays,
    CellColumns,
    CellRecord,
    ChangeEvent,
    ClassRecord,
    DetectionRun,
    HistoryRecord,
    ImageRecord,
    ModelRecord,
    OperationRecord,
    PredictionArrays,
    ProjectError,
    RegionHistoryRecord,
    RegionRecord,
    UndoConflictError,
)
from cellviewer.core.store.schema import REGION_KINDS, SCHEMA_VERSION

__all__ = [
    "LABEL_SOURCES",
    "PALETTE",
    "REGION_KINDS",
    "REVIEW_STATUSES",
    "SCHEMA_VERSION",
    "SUFFIX",
    "UNLABELLED",
    "CellArrays",
    "CellColumns",
    "CellRecord",
    "ChangeEvent",
    "ClassRecord",
    "DetectionRun",
    "HistoryRecord",
    "ImageRecord",
    "ModelRecord",
    "OperationRecord",
    "PredictionArrays",
    "ProjectError",
    "ProjectStore",
    "RegionHistoryRecord",
    "RegionRecord",
    "UndoConflictError",
    "current_user",
]
