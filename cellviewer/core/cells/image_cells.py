"""The cells of the open image as an observable model: one source of truth for what is on screen.

:class:`ImageCells` holds one image's cells as columnar NumPy arrays (id, internal key, position,
label, review status, label source, proposed or not, and the active model's predicted class and
confidence) kept sorted by the store's internal key, so that the cells a change event names are
found with one ``searchsorted``. It changes only through:

- :meth:`ImageCells.replace` (a load: the image's cells read in one query, usually in the
  background, see :func:`load_image_cells`),
- :meth:`ImageCells.apply_store_change` (every edit of the project, from any panel, undo and redo
  included: the store's :class:`~cellviewer.core.store.ChangeEvent` names the touched cells, which
  are read again, a few rows, not the image),
- :meth:`ImageCells.set_predictions` (a batch prediction's chunks, with no store round trip).

Views subscribe to ``events`` (psygnal, as napari's layers do; no Qt here). Every event carries
index arrays, never one object or one event per cell, so that half a million cells cost a few
array operations per edit:

``reset()``                 everything was replaced (another image, a reload)
``inserted(indices)``       cells were inserted; ``indices`` are their positions now
``removed(indices, ids)``   cells were removed; their positions before, and their ids
``changed(indices, fields)`` values changed at these positions; ``fields`` ⊆ FIELDS
``predictions(indices)``    predicted class / confidence changed (None: for every cell)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal, SignalGroup

from cellviewer.core.store import CellColumns, ChangeEvent
from cellviewer.core.store.schema import LABEL_SOURCES, REVIEW_STATUSES

FIELDS = frozenset({"xy", "class_id", "review", "source", "proposed"})


class CellEvents(SignalGroup):
    reset = Signal()
    inserted = Signal(object)
    removed = Signal(object, object)
    changed = Signal(object, object)
    predictions = Signal(object)


@dataclass
class LoadRequest:
    """What :func:`load_image_cells` reads (immutable, so a worker thread may hold it)."""

    project_path: str
    image_id: int
    model_id: int | None
    generation: int = 0  # ImageCells.generation when asked: only the newest load is shown


@dataclass
class _Pending:
    """Changes seen while a load was in flight: applied once its result arrives."""

    rows: list[np.ndarray] = field(default_factory=list)
    reload: bool = False


def index_ids(columns: CellColumns) -> dict[str, int]:
    """Cell id → position in ``columns`` (sorted by key, as :class:`ImageCells` keeps them):
    built by the worker that loads the cells, so the GUI thread never loops over them."""
    order = np.argsort(columns.rows, kind="stable")
    return {cid: i for i, cid in enumerate(columns.ids[order].tolist())}


def load_image_cells(request: LoadRequest) -> CellColumns:
    """Read one image's cells with the model's predictions through a read-only connection of
    its own (safe on a worker thread while the GUI's connection writes)."""
    from cellviewer.core.store import ProjectStore

    with ProjectStore.open(request.project_path, readonly=True) as store:
        return store.image_columns(request.image_id, request.model_id)


class ImageCells:
    """The cells of one image (see the module docstring)."""

    def __init__(self) -> None:
        self.events = CellEvents()
        self.image_id: int | None = None
        self.model_id: int | None = None
        self._cols = CellColumns.empty()
        self._index_of_id: dict[str, int] | None = None
        self._loading: _Pending | None = None
        self.generation = 0

    # --- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._cols)

    @property
    def ids(self) -> np.ndarray:
        return self._cols.ids

    @property
    def rows(self) -> np.ndarray:
        return self._cols.rows

    @property
    def xy(self) -> np.ndarray:
        return self._cols.xy

    @property
    def class_id(self) -> np.ndarray:
        return self._cols.class_id

    @property
    def review(self) -> np.ndarray:
        return self._cols.review

    @property
    def source(self) -> np.ndarray:
        return self._cols.source

    @property
    def pred_class(self) -> np.ndarray:
        return self._cols.pred_class

    @property
    def proposed(self) -> np.ndarray:
        """True where a cell is a detector's proposal not yet accepted (drawn hollow)."""
        return self._cols.proposed

    @property
    def confidence(self) -> np.ndarray:
        return self._cols.confidence

    def has_predictions(self) -> bool:
        return bool(len(self._cols)) and bool((self._cols.pred_class >= 0).any())

    def indices_of(self, ids) -> np.ndarray:
        """Position of each cell id (-1 where it is not a cell of this image)."""
        ids = list(ids)
        if not ids:
            return np.empty(0, dtype=np.int64)
        if self._index_of_id is None:
            self._index_of_id = {cid: i for i, cid in enumerate(self._cols.ids.tolist())}
        get = self._index_of_id.get
        return np.fromiter((get(str(c), -1) for c in ids), dtype=np.int64, count=len(ids))

    def indices_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Position of each internal key (-1 where absent): a binary search, no dictionary."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(self._cols):
            return np.full(len(rows), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._cols.rows, rows), len(self._cols) - 1)
        return np.where(self._cols.rows[pos] == rows, pos, -1)

    def counts_by_class(self) -> dict[int, int]:
        values, counts = np.unique(self._cols.class_id, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}

    def status_name(self, index: int) -> str:
        return REVIEW_STATUSES[int(self._cols.review[index])]

    def source_name(self, index: int) -> str:
        return LABEL_SOURCES[int(self._cols.source[index])]

    # --- loading ---------------------------------------------------------------------------
    def begin_load(self, image_id: int | None, model_id: int | None) -> None:
        """Start showing another image (or model): empty until :meth:`replace` brings its
        cells; changes to it seen meanwhile are kept and applied after."""
        switched = image_id != self.image_id
        self.image_id, self.model_id = image_id, model_id
        self.generation += 1
        if image_id is None:
            self._loading = None
        elif self._loading is None or switched:
            self._loading = _Pending()
        if switched:
            self._set(CellColumns.empty())
            self.events.reset.emit()

    @property
    def loading(self) -> bool:
        return self._loading is not None

    def replace(self, columns: CellColumns, store=None,
                index_of_id: dict[str, int] | None = None) -> None:
        """Show ``columns`` (a load's result for :attr:`image_id`); changes seen during the
        load are read again from ``store`` and applied on top. ``index_of_id``: the id → position
        map, when the worker that loaded the columns built it (see :func:`index_ids`)."""
        pending, self._loading = self._loading, None
        self._set(columns)
        if index_of_id is not None and len(index_of_id) == len(self._cols):
            self._index_of_id = index_of_id
        self.events.reset.emit()
        if pending is not None and store is not None and pending.rows:
            self._apply_rows(store, np.unique(np.concatenate(pending.rows)))

    def clear(self) -> None:
        self.image_id = self.model_id = None
        self._loading = None
        self._set(CellColumns.empty())
        self.events.reset.emit()

    def _set(self, columns: CellColumns) -> None:
        order = np.argsort(columns.rows, kind="stable")
        if len(order) and not (order == np.arange(len(order))).all():
            columns = _take(columns, order)
        self._cols = columns
        self._index_of_id = None

    # --- changes from the store ------------------------------------------------------------
    def apply_store_change(self, store, event: ChangeEvent) -> bool:
        """Follow one committed change of the project. Returns True when the whole image must
        be loaded again (a change whose cells are not known, or of classes and images)."""
        if self.image_id is None:
            return False
        if "cells" not in event.kinds and not event.kinds & {"classes", "images"}:
            return False
        if event.image_ids and self.image_id not in event.image_ids \
                and not event.kinds & {"classes", "images"}:
            return False  # another image's cells (a cell moved here would name this image)
        if event.cell_rows is None or event.kinds & {"classes", "images"}:
            if self._loading is not None:
                self._loading.reload = True
            return True
        if self._loading is not None:
            self._loading.rows.append(event.cell_rows)
            return False
        self._apply_rows(store, event.cell_rows)
        return False

    def _apply_rows(self, store, rows: np.ndarray) -> None:
        fresh = store.columns_of_rows(rows, self.model_id)
        here = fresh.image_id == self.image_id
        fresh_rows = fresh.rows[here]
        # removed: named, known here, and gone (deleted, or moved to another image)
        known = self.indices_of_rows(rows)
        gone = known[(known >= 0) & ~np.isin(rows, fresh_rows)]
        if len(gone):
            gone = np.sort(gone)
            ids = self._cols.ids[gone]
            keep = np.ones(len(self._cols), dtype=bool)
            keep[gone] = False
            self._cols = _take(self._cols, np.flatnonzero(keep))
            self._index_of_id = None
            self.events.removed.emit(gone, ids)
        if not len(fresh_rows):
            return
        sub = _take(fresh, np.flatnonzero(here))
        pos = self.indices_of_rows(sub.rows)
        old = pos >= 0
        if old.any():
            at, new = pos[old], _take(sub, np.flatnonzero(old))
            fields = set()
            c = self._cols
            if (c.xy[at] != new.xy).any():
                fields.add("xy")
            for name in ("class_id", "review", "source", "proposed"):
                if (getattr(c, name)[at] != getattr(new, name)).any():
                    fields.add(name)
            c.xy[at] = new.xy
            c.class_id[at] = new.class_id
            c.review[at] = new.review
            c.source[at] = new.source
            c.proposed[at] = new.proposed
            if fields:
                self.events.changed.emit(at, frozenset(fields))
        if (~old).any():
            add = _take(sub, np.flatnonzero(~old))
            self._cols, inserted = _insert_sorted(self._cols, add)
            self._index_of_id = None
            self.events.inserted.emit(inserted)

    # --- predictions -----------------------------------------------------------------------
    def set_predictions(self, ids, pred_class: np.ndarray, confidence: np.ndarray,
                        model_id: int | None) -> np.ndarray:
        """A chunk of a batch prediction of ``model_id`` (project class ids, -1 none, and
        confidences aligned with ``ids``); cells of other images are ignored. Returns the
        positions updated."""
        if model_id != self.model_id or not len(self._cols):
            return np.empty(0, dtype=np.int64)
        at = self.indices_of(ids)
        ok = at >= 0
        at = at[ok]
        if len(at):
            self._cols.pred_class[at] = np.asarray(pred_class, dtype=np.int64)[ok]
            self._cols.confidence[at] = np.asarray(confidence, dtype=np.float32)[ok]
            self.events.predictions.emit(at)
        return at


def _take(c: CellColumns, idx: np.ndarray) -> CellColumns:
    return CellColumns(c.ids[idx], c.rows[idx], c.image_id[idx], c.xy[idx], c.class_id[idx],
                       c.source[idx], c.review[idx], c.pred_class[idx], c.confidence[idx],
                       c.proposed[idx])


def _insert_sorted(c: CellColumns, add: CellColumns) -> tuple[CellColumns, np.ndarray]:
    """``c`` with ``add``'s cells inserted in key order; also their positions in the result."""
    add = _take(add, np.argsort(add.rows, kind="stable"))
    at = np.searchsorted(c.rows, add.rows)
    merged = CellColumns(*(np.insert(getattr(c, f), at, getattr(add, f), axis=0)
                           for f in ("ids", "rows", "image_id", "xy", "class_id", "source",
                                     "review", "pred_class", "confidence", "proposed")))
    return merged, at + np.arange(len(add))
