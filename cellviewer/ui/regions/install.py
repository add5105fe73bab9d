"""Plugging the Regions tool into the main window (through its Host surface).

``install(window)`` adds the "Regions" dock (tabbed with the other panels of the right-hand
column), Edit → Accept selected proposals (Ctrl+Shift+A), and the glue: a region drawn on the
view, or a corner handle dragged, becomes the core's edit
(:mod:`cellviewer.core.regions.editing`), the view outlines the
current image's regions, and the panel's counts follow every change of the project. The
counts are computed in a worker from a copy of the open image's cells (vectorised, but
O(cells)), newest request wins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QInputDialog

from cellviewer.core.regions import editing, proposals
from cellviewer.core.regions.summary import RegionSummary, summarise_cells
from cellviewer.core.store import CellArrays, ProjectError
from cellviewer.ui.common.workers import BackgroundRunner
from cellviewer.ui.regions.panel import RegionsPanel
from cellviewer.ui.viewer.regions_layer import RegionShape

REFRESH_MS = 50  # changes arriving together are counted once


class RegionsTool(QObject):
    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.view = window.view
        self.session = window.session
        self.panel = RegionsPanel()
        self.dock = QDockWidget("Regions", window)
        self.dock.setObjectName("regions_dock")
        self.dock.setWidget(self.panel)
        window.add_panel(self.dock, Qt.DockWidgetArea.RightDockWidgetArea)
        window.tabify_with("details", self.dock)
        self.runner = BackgroundRunner(1, self)
        self._generation = 0
        self._choose_next: str | None = None  # a region just drawn: chosen once listed
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self.accept_action = QAction("Accept selected &proposals", window)
        self.accept_action.setShortcut(QKeySequence("Ctrl+Shift+A"))
        self.accept_action.setStatusTip("The selected proposals become accepted cells "
                                        "(they keep their detector origin)")
        self.accept_action.triggered.connect(lambda _c=False: self.accept_selected())
        window.menu("&Edit").addAction(self.accept_action)
        self.detect_action = QAction("&Detect cells…", window)
        self.detect_action.setShortcut(QKeySequence("Ctrl+D"))
        self.detect_action.setStatusTip("Find the cells of the chosen region, the visible area "
                                        "or the image; they come in as proposals to review")
        self.detect_action.triggered.connect(lambda _c=False: self.open_detection())
        window.menu("&Analyze").addAction(self.detect_action)
        self.detect_dialog = None

        self.view.regionDrawn.connect(self.add_drawn)
        self.view.vertexMoved.connect(self.move_corner)
        p = self.panel
        p.regionChosen.connect(self._on_chosen)
        p.statusRequested.connect(lambda status: self.set_status(status))
        p.kindRequested.connect(lambda kind: self.set_kind(kind))
        p.renameRequested.connect(self._ask_rename)
        p.deleteRequested.connect(lambda: self.delete())
        p.acceptRegionRequested.connect(lambda: self.accept_in_region())
        p.acceptSelectedRequested.connect(lambda: self.accept_selected())
        p.zoomRequested.connect(lambda: self.zoom_to())
        ev = self.session.events
        ev.project.connect(lambda _s: self.schedule())
        ev.store_changed.connect(self._on_store_changed)
        window.imageChanged.connect(lambda _i: self.schedule())
        self.session.cells.events.reset.connect(self.schedule)

    # --- following the project ---------------------------------------------------------
    def _on_store_changed(self, event) -> None:
        if event.kinds & {"regions", "cells", "classes", "images"}:
            self.schedule()

    def schedule(self) -> None:
        self._timer.start()

    def refresh(self) -> None:
        """Outline the current image's regions now; count them in the background."""
        store, image_id = self.session.store, self.session.image_id
        self._generation += 1
        if store is None or image_id is None:
            self.view.set_regions([])
            self.panel.set_summaries([])
            return
        try:
            regions = store.regions(image_id)
            mpp = store.image(image_id).mpp
            classes = store.classes()
        except (ProjectError, KeyError) as exc:
            self.window.show_status(f"Regions: {exc}", 8000)
            return
        chosen = self.panel.current_uuid()
        self.view.set_regions([_shape(r) for r in regions], chosen)
        self.panel.class_colours = {c.id: c.color for c in classes}
        names = {c.id: c.name for c in classes}
        cells = self.session.cells
        snapshot = CellArrays(cells.ids, cells.xy.copy(), cells.class_id.copy(),
                              cells.review.copy(), cells.rows.copy(), cells.proposed.copy())
        generation = self._generation

        def count() -> list[RegionSummary]:
            return [summarise_cells(r, snapshot, mpp, names) for r in regions]

        def done(summaries: list[RegionSummary]) -> None:
            if generation == self._generation:
                keep, self._choose_next = self._choose_next, None
                self.panel.set_summaries(summaries, keep=keep)

        self.runner.submit(count, done, lambda msg: self.window.show_status(
            f"Regions: {msg}", 8000))

    def wait_idle(self, timeout_ms: int = 5000) -> bool:
        """Process events until the counts are shown (tests)."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if not self._timer.isActive() and not self.runner.pending():
                QCoreApplication.processEvents()
                return True
        return False

    def _on_chosen(self, uuid: str | None) -> None:
        self.view.selected_region = uuid
        self.view.update()

    # --- edits ---------------------------------------------------------------------------
    def _do(self, title: str, fn, *args):
        store = self.session.store
        if store is None:
            return None
        try:
            result = fn(store, *args)
        except (ProjectError, ValueError, KeyError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            self.window.report_error(title, str(text))
            return None
        message = getattr(result, "message", None)
        if message:
            self.window.show_status(message)
        return result

    def add_drawn(self, kind: str, points: np.ndarray) -> str | None:
        """A region drawn on the view (a rectangle's two corners or a polygon's corners)."""
        image_id = self.session.image_id
        if image_id is None:
            return None
        region_kind = self.panel.kind_combo.currentText()
        if kind == "rectangle":
            (x0, y0), (x1, y1) = points
            result = self._do("Cannot add the region", editing.add_rectangle, image_id,
                              x0, y0, x1, y1, "", region_kind)
        else:
            result = self._do("Cannot add the region", editing.add_polygon, image_id,
                              points, "", region_kind)
        self.view.set_tool("select")
        if result is None:
            return None
        self._choose_next = result.uuid  # chosen in the panel once its counts are listed
        self.refresh()
        self.view.selected_region = result.uuid  # (its corner handles show at once)
        self.view.update()
        return result.uuid

    def move_corner(self, uuid: str, index: int, x: float, y: float) -> bool:
        """A corner handle dragged on the view: one undoable edit (a crossing outline is
        repaired or refused with a message; cells are not changed)."""
        result = self._do("Cannot move the region's corner", editing.move_vertex, uuid,
                          index, x, y)
        self.refresh()  # (refused: the handle goes back where it was)
        return result is not None

    def set_status(self, status: str, uuid: str | None = None) -> int:
        uuid = uuid or self.panel.current_uuid()
        if uuid is None:
            return 0
        result = self._do(f"Cannot mark the region {status}", editing.set_status, uuid,
                          status)
        return result.count if result is not None else 0

    def set_kind(self, kind: str, uuid: str | None = None) -> None:
        uuid = uuid or self.panel.current_uuid()
        if uuid is not None:
            self._do("Cannot change the region's kind", editing.set_kind, uuid, kind)

    def rename(self, name: str, uuid: str | None = None) -> None:
        uuid = uuid or self.panel.current_uuid()
        if uuid is not None:
            self._do("Cannot rename the region", editing.rename, uuid, name)

    def _ask_rename(self) -> None:
        s = self.panel.current()
        if s is None:
            return
        name, ok = QInputDialog.getText(self.window, "Rename region", "Name:",
                                        text=s.region.name)
        if ok:
            self.rename(name, s.region.uuid)

    def delete(self, uuid: str | None = None) -> None:
        uuid = uuid or self.panel.current_uuid()
        if uuid is not None:
            self._do("Cannot delete the region", editing.delete, uuid)

    def accept_in_region(self, uuid: str | None = None) -> int:
        uuid = uuid or self.panel.current_uuid()
        if uuid is None:
            return 0
        n = self._do("Cannot accept the proposals", proposals.accept_in_region, uuid)
        if n is not None:
            self.window.show_status(f"accepted {n:,} proposal{'s' if n != 1 else ''}")
        return n or 0

    def accept_selected(self) -> int:
        ids = self.window.selected_cell_ids()
        if not ids:
            self.window.show_status("Select proposals first (click, or shift-drag)")
            return 0
        n = self._do("Cannot accept the proposals", proposals.accept, ids)
        if n is not None:
            self.window.show_status(f"accepted {n:,} proposal{'s' if n != 1 else ''}")
        return n or 0

    def zoom_to(self, uuid: str | None = None) -> None:
        uuid = uuid or self.panel.current_uuid()
        store = self.session.store
        if uuid is None or store is None:
            return
        region = store.region(uuid)
        if region.image_id != self.session.image_id:
            return
        ring = np.asarray(region.geometry["coordinates"][0], dtype=np.float64)
        (x0, y0), (x1, y1) = ring.min(axis=0), ring.max(axis=0)
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        zoom = 0.9 * min(self.view.width() / w, self.view.height() / h)
        self.view.centre_on((x0 + x1) / 2, (y0 + y1) / 2, zoom)


    def open_detection(self):
        """Analyze → Detect cells… (non-modal); returns the dialog, or None without an image."""
        from cellviewer.ui.regions.detect_dialog import DetectDialog

        if self.window.store is None or self.window.current_image_id() is None:
            self.window.show_status("Open an image to detect its cells.")
            return None
        if self.detect_dialog is not None and self.detect_dialog.isVisible():
            self.detect_dialog.raise_()
            return self.detect_dialog
        self.detect_dialog = DetectDialog(self.window, self.panel.current_uuid())
        self.detect_dialog.show()
        return self.detect_dialog


def _shape(region) -> RegionShape:
    coords = region.geometry["coordinates"]
    return RegionShape(region.uuid, region.name, np.asarray(coords[0], dtype=np.float64),
                       holes=[np.asarray(h, dtype=np.float64) for h in coords[1:]])


def install(window: Any) -> RegionsTool:
    return RegionsTool(window)
