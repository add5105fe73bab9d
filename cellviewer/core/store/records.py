"""What the project store hands out: small frozen records and numpy bundles for bulk results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellviewer.core.store.schema import LABEL_SOURCES, REVIEW_STATUSES

__all__ = [
    "LABEL_SOURCES",
    "REVIEW_STATUSES",
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
    "ProjectBusyError",
    "ProjectDamagedError",
    "ProjectDiskFullError",
    "ProjectError",
    "ProjectReadOnlyError",
    "RegionHistoryRecord",
    "RegionRecord",
    "UndoConflictError",
]


class ProjectError(Exception):
    """A project file that cannot be used, or an edit the project refuses; the message names the
    file (and, for imports, the line or feature) and the cause."""


class UndoConflictError(ProjectError):
    """An undo or redo refused because another session wrote the actions it would step back
    through (another process with the project open, or another user's earlier session), so it
    would revert their edit. ``user``, ``at`` and ``description`` name that write (``at`` ISO
    8601 UTC); nothing was changed."""

    def __init__(self, message: str, *, user: str, at: str, description: str) -> None:
        super().__init__(message)
        self.user = user
        self.at = at
        self.description = description


class ProjectFileError(ProjectError):
    """A failure of the project file itself (see the subclasses), translated from SQLite in one
    place (``cellviewer.core.store.base.store_errors``). ``path`` is the project file and
    ``cause`` the reason in words; the message is ``"<path>: <cause>"``."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")

    def __reduce__(self):  # picklable across processes despite the two-argument constructor
        return type(self), (self.path, self.cause)


class ProjectDamagedError(ProjectFileError):
    """The project file is damaged (SQLite reports it corrupt or not a database, its check at
    open failed, or a stored value cannot be decoded). Nothing was changed; the way out is to
    open it read-only and export what can be read, or to restore a backup
    (``cellviewer.core.store.backup``)."""


class ProjectReadOnlyError(ProjectFileError):
    """The project is open read-only (read-only file or folder, or opened so on purpose) and
    an edit was refused, or the medium refused a write."""


class ProjectBusyError(ProjectFileError):
    """Another program kept the project file locked for longer than the busy timeout;
    ``holder`` describes who holds the project's lock file when that is known, else ""."""

    def __init__(self, path: str | Path, cause: str, holder: str = "") -> None:
        self.holder = holder
        super().__init__(path, cause)

    def __reduce__(self):
        return type(self), (self.path, self.cause, self.holder)


class ProjectDiskFullError(ProjectFileError):
    """The disk (or the project's size limit) is full: the change was not saved."""


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: Path  # absolute (resolved against the project's folder when stored relative)
    width: int
    height: int
    mpp: float | None
    fingerprint: str | None
    cell_count: int
    stored_path: str  # as stored: relative to the project's folder when inside it

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ClassRecord:
    id: int
    name: str
    color: str  # "#rrggbb"
    key: str  # "1".."9" or ""
    order: int


@dataclass(frozen=True)
class CellRecord:
    id: str  # UUID
    image_id: int
    x: float  # level-0 pixels
    y: float
    class_id: int | None
    label_source: str
    review_status: str
    updated_by: str  # who last changed the label
    updated_at: str  # and when, ISO 8601 UTC
    metadata: dict = field(default_factory=dict)
    proposed: bool = False  # a detector's proposal, not yet accepted
    score: float | None = None  # the detection score (detections)
    run_id: str | None = None  # the detection run that found it
    outline: str | None = None  # its own polygon (GeoJSON Polygon text), when imported


@dataclass(frozen=True)
class CellArrays:
    """Cells in bulk, aligned by index. ``class_id`` is -1 where a cell is unlabelled;
    ``review`` indexes ``REVIEW_STATUSES``; ``rows`` are internal keys (fast to pass back);
    ``proposed`` is True for a detector's proposals not yet accepted."""

    ids: np.ndarray  # (N,) object, UUID strings
    xy: np.ndarray  # (N, 2) float64
    class_id: np.ndarray  # (N,) int64
    review: np.ndarray  # (N,) int8
    rows: np.ndarray  # (N,) int64
    proposed: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def empty() -> CellArrays:
        return CellArrays(
            np.empty(0, dtype=object), np.empty((0, 2)), np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int8), np.empty(0, dtype=np.int64), np.empty(0, dtype=bool),
        )


@dataclass(frozen=True)
class CellColumns:
    """Cells with what a view shows of them, aligned by index (see ``cell_columns.py``):
    ``class_id`` and ``pred_class`` are project class ids (-1: none), ``source`` indexes
    ``LABEL_SOURCES``, ``review`` indexes ``REVIEW_STATUSES``, ``confidence`` is NaN without a
    prediction; ``rows`` are the internal keys the store's change events name; ``proposed``:
    a detector's proposal not yet accepted (drawn hollow)."""

    ids: np.ndarray  # (N,) object, UUID strings
    rows: np.ndarray  # (N,) int64
    image_id: np.ndarray  # (N,) int64
    xy: np.ndarray  # (N, 2) float64
    class_id: np.ndarray  # (N,) int64
    source: np.ndarray  # (N,) int8
    review: np.ndarray  # (N,) int8
    pred_class: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) float32
    proposed: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def empty() -> CellColumns:
        i64 = np.empty(0, dtype=np.int64)
        i8 = np.empty(0, dtype=np.int8)
        return CellColumns(np.empty(0, dtype=object), i64, i64.copy(), np.empty((0, 2)),
                           i64.copy(), i8, i8.copy(), i64.copy(),
                           np.empty(0, dtype=np.float32), np.empty(0, dtype=bool))


@dataclass(frozen=True)
class RegionRecord:
    """A region of an image (schema version 3): a polygon with a stable ``uuid``."""

    id: int  # internal key
    uuid: str
    image_id: int
    geometry: dict  # GeoJSON Polygon, level-0 pixels
    name: str
    kind: str
    status: str  # one of REVIEW_STATUSES
    created_by: str
    created_at: str
    updated_by: str
    updated_at: str


@dataclass(frozen=True)
class RegionHistoryRecord:
    id: int
    region_uuid: str
    image_id: int | None
    op_id: int | None
    action: str  # add, edit, status, delete, undo, redo
    old: dict | None  # the region's fields before (None: it did not exist)
    new: dict | None  # after (None: deleted)
    user: str
    at: str


@dataclass(frozen=True)
class DetectionRun:
    """One detection run: what found a set of proposals, with which parameters, and how many
    it found and added (the rest lay too near an existing marker)."""

    id: str  # uuid
    image_id: int | None
    method: str
    params: dict
    n_found: int
    n_added: int
    op_id: int | None
    run_by: str
    run_at: str


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    path: str | None
    arch: str | None
    classes: list[str]  # the model's output order
    class_ids: list[int | None]  # project class meant by each model class (None: no match)
    meta: dict
    added_by: str
    added_at: str
    n_predictions: int


@dataclass(frozen=True)
class PredictionArrays:
    """Predictions of one model for the cells asked, in the order asked. Rows without a
    prediction have NaN probabilities and confidence and ``predicted == -1``."""

    classes: list[str]  # the model's classes (columns of probs)
    probs: np.ndarray  # (N, K) float32
    predicted: np.ndarray  # (N,) int64 index into classes, -1 none
    predicted_class_id: np.ndarray  # (N,) int64 project class id, -1 none or unmatched
    confidence: np.ndarray  # (N,) float32

    @property
    def predicted_names(self) -> list[str | None]:
        return [self.classes[i] if i >= 0 else None for i in self.predicted.tolist()]

    @property
    def has_prediction(self) -> np.ndarray:
        return self.predicted >= 0


@dataclass(frozen=True)
class HistoryRecord:
    id: int
    cell_id: str  # UUID
    image_id: int | None
    op_id: int | None
    action: str
    old_class: str | None  # class names at the time of the change
    new_class: str | None
    old_status: str | None
    new_status: str | None
    source: str | None
    user: str
    at: str
    detail: dict


@dataclass(frozen=True)
class OperationRecord:
    id: int
    action: str
    description: str
    user: str
    at: str
    state: str  # done, undone, discarded (redo stack dropped), expired (too old to undo)
    n_cells: int


@dataclass(frozen=True)
class ChangeEvent:
    """Told to listeners after each committed change, so views can refresh what they show.

    ``kinds`` is a subset of {"cells", "classes", "images", "models", "predictions",
    "regions", "settings"};
    ``image_ids`` the images whose cells changed (empty when unknown or none);
    ``cell_rows`` the internal keys (``CellArrays.rows``) of the cells an action touched
    (added, changed, deleted, or brought back by undo), or None when not known: a view then
    reads those rows again (:meth:`ProjectStore.columns_of_rows`) instead of everything.
    """

    kinds: frozenset[str]
    image_ids: frozenset[int]
    op_id: int | None = None
    action: str = ""
    cell_rows: np.ndarray | None = None
