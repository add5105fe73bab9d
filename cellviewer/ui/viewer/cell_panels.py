"""The panels that show the open image's cells follow its model, never the window's edits.

:class:`CellPanels` subscribes to the session's
:class:`~cellviewer.core.cells.image_cells.ImageCells`
and keeps the gallery, the class counts, the image list's counts, the cell details and the status
bar's count in step with it: in the event loop's next turn after an edit (one event per action,
whatever its size; the transaction and the redraw are two short blocks), at most every
``PREDICTION_REFRESH_MS`` during a batch prediction. Array work only (no store scan:
the counts come from the model's arrays, the image list's from the store's cached counts).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer

from cellviewer.core.cells.order import SLIDE, order_by_confidence
from cellviewer.core.project.session import ProjectSession
from cellviewer.ui.common.workers import BackgroundRunner
from cellviewer.ui.viewer.cell_details import CellDetails
from cellviewer.ui.viewer.class_panel import ClassPanel
from cellviewer.ui.viewer.gallery import GalleryPanel
from cellviewer.ui.viewer.image_list import ImageList
from cellviewer.ui.viewer.markers import ClassStyle
from cellviewer.ui.viewer.padding import PATCH_SIZE, inside_rect, padded_mask
from cellviewer.ui.viewer.slide_view import SlideView
from cellviewer.ui.viewer.tiles import SourceHandle

PREDICTION_REFRESH_MS = 300  # a batch prediction re-orders the gallery at most this often


class CellPanels(QObject):
    """See the module docstring. ``handle()`` gives the open image's source (for crops)."""

    def __init__(self, session: ProjectSession, view: SlideView, gallery_panel: GalleryPanel,
                 class_panel: ClassPanel, details: CellDetails, image_list: ImageList,
                 handle: Callable[[], SourceHandle | None], runner: BackgroundRunner,
                 show_count: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.view = session, view
        self.gallery_panel, self.gallery = gallery_panel, gallery_panel.gallery
        self.class_panel, self.details, self.image_list = class_panel, details, image_list
        self._handle, self._runner, self._show_count = handle, runner, show_count
        self.classes: list[ClassStyle] = []
        self._gallery_generation = 0
        self._dirty: set[str] = set()
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self._flush)
        self._pred_timer = QTimer(self, singleShot=True, interval=PREDICTION_REFRESH_MS)
        self._pred_timer.timeout.connect(lambda: self._mark("predictions"))
        self._selection_from_gallery = False
        self._changed_at = np.empty(0, dtype=np.int64)  # labels changed since the last flush

        ev = session.cells.events
        ev.reset.connect(lambda: self._mark("structure"))
        ev.inserted.connect(lambda _i: self._mark("structure"))
        ev.removed.connect(lambda _i, _ids: self._mark("structure"))
        ev.changed.connect(self._on_changed)
        ev.predictions.connect(self._on_predictions)
        view.selectionChanged.connect(self._on_view_selection)
        self.gallery.selectionChanged.connect(self._on_gallery_selection)
        self.gallery.patchesNeeded.connect(self._crop_for_gallery)
        self.gallery_panel.filterChanged.connect(lambda _f: self.refresh_gallery())
        self.gallery_panel.orderChanged.connect(lambda _o: self.refresh_gallery())

    # --- coalescing ----------------------------------------------------------------------
    def _mark(self, what: str) -> None:
        """Redraw after the event loop has had its turn: the edit that caused it (a store
        transaction) and the redraw are two short blocks, not one long one."""
        self._dirty.add(what)
        self._timer.start()

    def _on_changed(self, indices: np.ndarray, fields) -> None:
        if "xy" in fields:
            self._forget_patches(indices)
        if "class_id" in fields:
            self._changed_at = np.concatenate([self._changed_at, indices])
            self._mark("labels")
        else:
            self._mark("details")

    def _on_predictions(self, _indices) -> None:
        if not self._pred_timer.isActive():
            self._pred_timer.start()

    @property
    def pending(self) -> bool:
        """A redraw is scheduled (tests and the benchmark wait for it)."""
        return self._timer.isActive() or bool(self._dirty)

    def flush(self) -> None:
        """Apply what is pending now (the prediction timer does it otherwise)."""
        self._timer.stop()
        self._pred_timer.stop()
        if self.session.cells.has_predictions():
            self._dirty.add("predictions")
        self._flush()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        cells = self.session.cells
        if "structure" in dirty or "labels" in dirty:
            counts = cells.counts_by_class()
            self.class_panel.set_counts(counts)
            self.gallery_panel.set_classes(self.classes, counts)
        if "structure" in dirty:
            self.refresh_gallery(keep_scroll=True)
            self.update_image_counts()
        elif "labels" in dirty:
            self._update_gallery_labels()
        if "predictions" in dirty and "structure" not in dirty \
                and self.gallery_panel.current_order() != SLIDE:
            self.refresh_gallery(keep_scroll=True)
        self._changed_at = np.empty(0, dtype=np.int64)
        self.show_details()
        self.update_count()

    # --- classes -------------------------------------------------------------------------
    def set_classes(self, classes: list[ClassStyle]) -> None:
        self.classes = list(classes)
        counts = self.session.cells.counts_by_class()
        self.class_panel.set_classes(self.classes, counts)
        self.gallery_panel.set_classes(self.classes, counts)

    def class_name(self, class_id: int | None) -> str:
        for c in self.classes:
            if c.id == class_id:
                return c.name
        return "unlabelled"

    # --- gallery -------------------------------------------------------------------------
    def refresh_gallery(self, keep_scroll: bool = False) -> None:
        """Fill the gallery from the model (array work only; fast for 100,000 cells)."""
        self._gallery_generation += 1
        cells = self.session.cells
        f = self.gallery_panel.current_filter()
        if f == "selection":
            rows = cells.indices_of(self.view.selected_ids())
            rows = rows[rows >= 0]
        elif f == "all":
            rows = np.arange(len(cells))
        else:
            rows = np.flatnonzero(cells.class_id == int(f))
        order = self.gallery_panel.current_order()
        scores = predicted = None
        if order != SLIDE and cells.has_predictions():
            rows = order_by_confidence(rows, cells.confidence, order)
            scores, predicted = cells.confidence[rows], cells.pred_class[rows]
        self.gallery.set_items(cells.ids[rows], cells.class_id[rows], scores=scores,
                               predicted=predicted, keep_scroll=keep_scroll)
        self.gallery.select_ids(self.view.selected_ids())
        self.gallery_panel.show_count(len(rows))
        if order != SLIDE and not cells.has_predictions():
            self.gallery_panel.count.setText(f"{len(rows):,} cells · no predictions to order by")

    def _update_gallery_labels(self) -> None:
        """Labels changed: in place where the filter keeps the same cells, else refill."""
        if isinstance(self.gallery_panel.current_filter(), int):
            self.refresh_gallery(keep_scroll=True)
            return
        cells = self.session.cells
        at = np.unique(self._changed_at)
        if len(at):
            self.gallery.update_labels(cells.ids[at], cells.class_id[at])

    def _forget_patches(self, indices: np.ndarray) -> None:
        cells = self.session.cells
        at = [self.gallery.index_of(str(i)) for i in cells.ids[indices]]
        at = [i for i in at if i >= 0]
        if at:
            self.gallery.forget_patches(at)

    def _crop_for_gallery(self, indices: np.ndarray) -> None:
        handle = self._handle()
        if handle is None or not len(indices):
            return
        cells = self.session.cells
        rows = cells.indices_of(self.gallery.ids_at(indices))
        ok = rows >= 0
        indices, rows = np.asarray(indices)[ok], rows[ok]
        xy = cells.xy[rows].copy()
        generation = self._gallery_generation

        def crop():
            from cellviewer.core.cells.crop import crop_patches

            result = handle.call(crop_patches, xy)
            return result.patches, [
                inside_rect(o, result.window_px, handle.width, handle.height)
                for o in result.origins]

        def done(found) -> None:
            if generation == self._gallery_generation:
                self.gallery.set_patches(indices, *found)  # padded crops are marked

        self._runner.submit(crop, done, lambda _msg: None)

    # --- selection -----------------------------------------------------------------------
    def _on_view_selection(self, ids: list) -> None:
        if not self._selection_from_gallery:
            self.gallery.select_ids(ids)
            if self.gallery_panel.current_filter() == "selection":
                self.refresh_gallery()
        self.show_details()
        self.update_count()

    def _on_gallery_selection(self, ids: list) -> None:
        self._selection_from_gallery = True
        try:
            self.view.select_ids(ids)
        finally:
            self._selection_from_gallery = False

    # --- details and counts --------------------------------------------------------------
    def show_details(self) -> None:
        ids = self.view.selected_ids()
        store = self.session.store
        if len(ids) != 1 or store is None:
            if ids:
                self.details.show_many(len(ids), self._padded_count(ids))
            else:
                self.details.clear()
            return
        cid = ids[0]
        try:
            cell = store.cell(cid)
            history = store.history(cid)
            image = store.image(cell.image_id)
        except Exception as exc:  # a cell deleted meanwhile
            self.details.clear(str(exc))
            return
        self.details.show_cell(cell, self.class_name(cell.class_id), history, image.mpp)
        handle = self._handle()
        if handle is None:
            return
        xy = np.array([[cell.x, cell.y]])

        def crop():
            from cellviewer.core.cells.crop import crop_patches

            result = handle.call(crop_patches, xy)
            inside = inside_rect(result.origins[0], result.window_px, handle.width,
                                 handle.height)
            return result.patches[0], inside

        self._runner.submit(crop, lambda found: self.details.set_patch(cid, *found))

    def _padded_count(self, ids: list) -> int | None:
        """How many of the selected cells (of the open image) have reflect-padded crops."""
        handle = self._handle()
        if handle is None:
            return None
        cells = self.session.cells
        rows = cells.indices_of(ids)
        rows = rows[rows >= 0]
        return int(padded_mask(cells.xy[rows], PATCH_SIZE, handle.width, handle.height).sum())

    def update_count(self) -> None:
        n = len(self.session.cells)
        sel = len(self.view.selected_ids())
        text = f"{n:,} cells" if self.session.image_id is not None else ""
        if sel:
            text += f" · {sel:,} selected"
        self._show_count(text)

    def update_image_counts(self) -> None:
        """The open image's count, from its cells (other images change through the store's
        events: MainWindow refreshes the list for those)."""
        cells = self.session.cells
        if cells.image_id is not None and not cells.loading:
            self.image_list.set_count(cells.image_id, len(cells))

    def clear(self) -> None:
        """No project: empty panels."""
        self._dirty.clear()
        self.gallery.set_items([], [])
        self.details.clear()
        self.set_classes([])
