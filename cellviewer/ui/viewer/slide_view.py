"""The slide view: a tiled, multi-resolution image with cell markers, zoom, pan and editing.

Rendering never waits on I/O: ``paintEvent`` draws the tiles that are in the cache, asks the
:class:`~cellviewer.ui.viewer.tiles.TileLoader` for the others, and meanwhile fills their place with
the nearest coarser cached tile scaled up (the whole image is one tile at the coarsest level,
fetched first, so there is always something). Markers come from a
:class:`~cellviewer.ui.viewer.markers.MarkerLayer`: only those inside the viewport (plus a margin)
are
drawn, into an overlay image that is reused while the user pans at the same zoom, so a frame is
two blits whatever the number of cells.

Coordinates: level-0 image pixels ``(x, y)`` map to widget pixels ``(x * zoom - ox, y * zoom -
oy)``; ``ox, oy`` are whole pixels so tiles and the overlay align exactly.

Mouse and keys (the view emits requests; the main window applies them to the project):

- click: select the nearest marker within a few pixels (empty space: clear the selection);
- shift-click: add/remove a marker to/from the selection; shift-drag: rubber-band selection
  (added to the current one);
- drag a marker: move it (``moveRequested``); drag elsewhere (or middle button): pan;
- ctrl-click, or click in add mode (``A``): add a marker (``addRequested``);
- drag with the Measure tool (``M``): a ruler, its length in µm where the pixel size is known
  (``measured``); it stays on the image until the next one or Esc;
- wheel: zoom around the cursor; ``F``: fit; arrows: pan; ``+``/``-``: zoom; Esc: clear
  the selection and the ruler and go back to the select tool; click or drag in the overview
  (top right) to jump there;
- region tool (``R``): drag a rectangle, or click a polygon's corners and close it with a
  double-click or Enter; Esc cancels, Backspace takes back the last corner
  (``regionDrawn``; see :mod:`cellviewer.ui.viewer.regions_layer`);
- corner handles (the selected region's; every region's with the region tool): drag one to
  move that corner (``vertexMoved``; the tool makes it one undoable edit).

Regions are drawn as outlines with their names (:meth:`SlideView.set_regions`); a detector's
proposals as hollow markers until accepted (``markers.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from cellviewer.core.cells.image_cells import ImageCells
from cellviewer.ui.viewer.markers import MarkerLayer, draw_sprites, marker_sprite, paint_markers
from cellviewer.ui.viewer.regions_layer import (
    CornerDrag,
    RegionDrawing,
    RegionShape,
    handle_at,
    paint_drawing,
    paint_handles,
    paint_regions,
)
from cellviewer.ui.viewer.ruler import Ruler, paint_ruler
from cellviewer.ui.viewer.tiles import (
    TILE_SIZE,
    SourceHandle,
    TileKey,
    TileLoader,
    grid_size,
    level_count,
    level_for_zoom,
    tile_rect,
)

BACKGROUND = QColor("#2b2b2b")
PLACEHOLDER = QColor("#d8d8d8")
SELECTION_COLOUR = QColor("#ffff00")
DRAG_THRESHOLD = 4  # screen px before a press becomes a drag
MAX_ZOOM = 32.0
FOV_PX = 40  # the patch a model sees: drawn around the selected cell when zoomed in
OVERVIEW_MAX = 180


def nice_length(target: float) -> float:
    """1, 2 or 5 times a power of ten, the largest not above ``target``."""
    if target <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * power <= target:
            return m * power
    return power


class SlideView(QWidget):
    selectionChanged = Signal(object)  # cell ids (a list; object: not converted to Qt)
    addRequested = Signal(float, float)  # level-0 position of a new marker
    moveRequested = Signal(str, float, float)  # cell id, new level-0 position
    cursorMoved = Signal(float, float)  # level-0 position under the cursor (nan when outside)
    viewChanged = Signal()  # zoom or pan changed
    toolChanged = Signal(str)  # "select", "add", "measure" or "region"
    measured = Signal(str)  # the ruler's length, in words ("" once it is cleared)
    regionDrawn = Signal(str, object)  # "rectangle" or "polygon", level-0 corners (N, 2)
    vertexMoved = Signal(str, int, float, float)  # region uuid, corner index, level-0 x, y
    tilesShown = Signal(float)  # every tile of the view loaded; seconds since set_source

    def __init__(self, loader: TileLoader | None = None, parent: QWidget | None = None,
                 cells: ImageCells | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.loader = loader or TileLoader(parent=self)
        self.loader.tileLoaded.connect(self._on_tile_loaded)
        # the markers draw the open image's cells (one model, shared with every panel)
        self.layer = MarkerLayer(cells)
        self.layer.on_change = self.cells_updated
        self.layer.cells.events.removed.connect(self._on_cells_removed)
        self.layer.cells.events.reset.connect(self._on_cells_reset)
        self.handle: SourceHandle | None = None
        self._levels = 1
        self._zoom = 1.0
        self._ox = 0.0
        self._oy = 0.0
        self._fitted = True  # follow resizes with a fit until the user zooms or pans
        self._pending_centre: tuple[float, float, float | None] | None = None
        self.marker_style = "circle"
        self.marker_size = 12
        self.markers_visible = True
        self.marker_opacity = 1.0  # the Display panel's marker opacity and outline width
        self.marker_outline = 1.0
        #: the view's own look (brightness, stains: cellviewer.ui.viewer.display): adjusts a
        #: composed RGB32 QImage in place; the tiles in the cache stay the image's own pixels
        self.display_filter: Callable[[QImage], None] | None = None
        self._display_version = 0
        self._display_tiles: dict[tuple, QImage] = {}
        self.fov_px = FOV_PX
        self.tool = "select"
        self.regions: list[RegionShape] = []
        self.selected_region: str | None = None
        self.drawing = RegionDrawing()
        self._corner: CornerDrag | None = None  # a region's corner being dragged
        self._selected: list[str] = []
        self._selected_rows: np.ndarray | None = None
        self._sel_version = -1
        # base cache: the tiles composed for a region of the zoomed image
        self._base: QImage | None = None
        self._base_key: tuple | None = None
        self._base_rect = QRect()
        self._base_tiles = 0
        # overlay cache: markers rendered for a region of the zoomed image
        self._overlay: QImage | None = None
        self._overlay_key: tuple | None = None
        self._overlay_rect = QRect()
        # interaction
        self._press: QPointF | None = None
        self._press_button = Qt.MouseButton.NoButton
        self._press_mods = Qt.KeyboardModifier.NoModifier
        self._press_row = -1
        self._drag: str | None = None  # "pan", "move", "band", "overview", "measure"
        self._last: QPointF | None = None
        self._band: QRectF | None = None
        self.ruler: Ruler | None = None  # the last measurement (level-0 pixels)
        self._move_to: tuple[float, float] | None = None
        # bookkeeping for tests, the status bar and the benchmark
        self.stats = {"paint_ms": 0.0, "overlay_ms": 0.0, "markers_drawn": 0, "tiles_drawn": 0,
                      "tiles_missing": 0}
        self._opened_at = 0.0
        self._tiles_reported = True
        self.message = ""  # shown when there is no image

    # --- image and cells ---------------------------------------------------------------------
    def set_source(self, handle: SourceHandle | None) -> None:
        """Show another image (or none). The caller owns the handle and closes the old one."""
        if self.handle is not None:
            self.loader.forget_source(self.handle.id)
        self.handle = handle
        # (the selection belongs to the cells: it changes when they do, see _on_cells_reset)
        self._selected_rows = None
        self._overlay = self._overlay_key = None
        self._base = self._base_key = None
        self._drag = None
        self.clear_ruler()  # measured on the image that is going away
        if handle is None:
            self._pending_centre = None  # meant for the image that is going away
            self.layer.set_extent(1, 1)
        else:
            self._levels = level_count(handle.width, handle.height)
            self._opened_at = time.perf_counter()
            self._tiles_reported = False
            self.layer.set_extent(handle.width, handle.height)
            # the whole image in one tile: the fallback under everything and the overview
            self.loader.request(handle, self._top_key(), priority=10)
            if self._pending_centre is not None:
                x, y, z = self._pending_centre
                self._pending_centre = None
                self.centre_on(x, y, z)
            else:
                self.fit()
        self.update()
        self.viewChanged.emit()

    def set_cells(self, ids, xy, class_id, index=None) -> None:
        """Show these cells without a project behind them (a standalone view, tests; the app's
        cells come from its session). ``index``: a GridIndex already built over ``xy``."""
        w, h = (self.handle.width, self.handle.height) if self.handle else (1, 1)
        self.layer.set_cells(ids, xy, class_id, w, h, index=index)
        self.select_ids(self._selected, emit=False)
        self.cells_updated()

    def cells_updated(self) -> None:
        """The markers changed (the layer calls this after every change of the cells)."""
        self._selected_rows = None
        self.update()

    def _on_cells_reset(self) -> None:
        """Other cells (another image, a reload): the selection keeps those still there."""
        if self._selected:
            self.select_ids(self._selected)

    def _on_cells_removed(self, _indices, ids) -> None:
        if not self._selected:
            return
        gone = set(ids.tolist())
        kept = [i for i in self._selected if i not in gone]
        if len(kept) != len(self._selected):
            self._selected = kept
            self._selected_rows = None
            self.selectionChanged.emit(list(kept))

    # --- geometry ----------------------------------------------------------------------------
    def zoom(self) -> float:
        return self._zoom

    def image_size(self) -> tuple[int, int]:
        return (self.handle.width, self.handle.height) if self.handle else (0, 0)

    def image_to_view(self, x: float, y: float) -> QPointF:
        return QPointF(x * self._zoom - self._ox, y * self._zoom - self._oy)

    def view_to_image(self, p: QPointF | QPoint) -> tuple[float, float]:
        return ((p.x() + self._ox) / self._zoom, (p.y() + self._oy) / self._zoom)

    def visible_image_rect(self) -> tuple[float, float, float, float]:
        """The level-0 rectangle (x0, y0, x1, y1) on screen (may extend past the image)."""
        z = self._zoom
        return (self._ox / z, self._oy / z, (self._ox + self.width()) / z,
                (self._oy + self.height()) / z)

    def fit_zoom(self) -> float:
        if self.handle is None:
            return 1.0
        w, h = max(1, self.width()), max(1, self.height())
        return min(w / self.handle.width, h / self.handle.height)

    def fit(self) -> None:
        if self.handle is None:
            return
        self._zoom = self.fit_zoom()
        self._centre_at(self.handle.width / 2, self.handle.height / 2)
        self._fitted = True
        self._view_moved()

    def one_to_one(self) -> None:
        if self.handle is None:
            return
        x, y = self.view_to_image(QPointF(self.width() / 2, self.height() / 2))
        self.centre_on(x, y, 1.0)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under ``anchor`` (default: the centre) in place."""
        if self.handle is None:
            return
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        x, y = self.view_to_image(anchor)
        lo = min(self.fit_zoom(), 1.0) / 4
        self._zoom = float(min(MAX_ZOOM, max(lo, zoom)))
        self._ox = round(x * self._zoom - anchor.x())
        self._oy = round(y * self._zoom - anchor.y())
        self._fitted = False
        self._clamp()
        self._view_moved()

    def centre_on(self, x: float, y: float, zoom: float | None = None) -> None:
        """Put level-0 (x, y) in the middle of the view (optionally at a zoom)."""
        if self.handle is None:
            self._pending_centre = (x, y, zoom)
            return
        if zoom is not None:
            lo = min(self.fit_zoom(), 1.0) / 4
            self._zoom = float(min(MAX_ZOOM, max(lo, zoom)))
        self._centre_at(x, y)
        self._fitted = False
        self._clamp()
        self._view_moved()

    def pan_by(self, dx: float, dy: float) -> None:
        self._ox = round(self._ox - dx)
        self._oy = round(self._oy - dy)
        self._fitted = False
        self._clamp()
        self._view_moved()

    def _centre_at(self, x: float, y: float) -> None:
        self._ox = round(x * self._zoom - self.width() / 2)
        self._oy = round(y * self._zoom - self.height() / 2)

    def _clamp(self) -> None:
        """Keep at least a corner of the image on screen."""
        if self.handle is None:
            return
        margin = 64
        iw, ih = self.handle.width * self._zoom, self.handle.height * self._zoom
        self._ox = min(max(self._ox, margin - self.width()), iw - margin)
        self._oy = min(max(self._oy, margin - self.height()), ih - margin)

    def _view_moved(self) -> None:
        self.update()
        self.viewChanged.emit()

    def resizeEvent(self, event) -> None:
        if self._fitted:
            self.fit()
        elif self.handle is not None and event.oldSize().isValid():
            # Keep the image point under the centre where it was (docks opening, the window
            # being resized), so a cell the user centred on stays centred.
            old, size = event.oldSize(), event.size()
            self._ox = round(self._ox + (old.width() - size.width()) / 2)
            self._oy = round(self._oy + (old.height() - size.height()) / 2)
            self._clamp()
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(800, 600)

    # --- selection ---------------------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        return list(self._selected)

    def select_ids(self, ids, emit: bool = True) -> None:
        ids = [str(i) for i in ids]
        if len(self.layer):
            rows = self.layer.rows_of(ids)
            ids = [i for i, r in zip(ids, rows, strict=True) if r >= 0]
        else:
            ids = []
        changed = ids != self._selected
        self._selected = ids
        self._selected_rows = None
        self.update()
        if emit and changed:
            self.selectionChanged.emit(list(ids))

    def _selection_rows(self) -> np.ndarray:
        if self._selected_rows is None or self._sel_version != self.layer.version:
            rows = self.layer.rows_of(self._selected)
            self._selected_rows = rows[rows >= 0]
            self._sel_version = self.layer.version
        return self._selected_rows

    def hit_radius(self) -> float:
        """How near (in level-0 px) a click must be to pick a marker."""
        return max(6.0, self.marker_look()[1] / 2 + 3) / self._zoom

    def marker_at(self, p: QPointF | QPoint) -> int:
        """The row of the visible marker nearest a widget position, or -1."""
        if not len(self.layer) or not self.markers_visible:
            return -1
        x, y = self.view_to_image(QPointF(p))
        return self.layer.nearest(x, y, self.hit_radius())

    # --- tools and style ---------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in ("select", "add", "measure", "region"):
            raise ValueError(f"unknown tool {tool!r}")
        if tool != self.tool:
            self.tool = tool
            self.drawing.clear()
            self.setCursor(self._tool_cursor())
            self.toolChanged.emit(tool)
            self.update()

    # --- regions -----------------------------------------------------------------------------
    def set_regions(self, shapes: list[RegionShape], selected: str | None = None) -> None:
        """The regions to outline (the Regions tool's, from the store)."""
        self.regions = list(shapes)
        self.selected_region = selected
        self.update()

    def _tool_cursor(self) -> Qt.CursorShape:
        return (Qt.CursorShape.ArrowCursor if self.tool == "select" else
                Qt.CursorShape.CrossCursor)

    def handle_regions(self) -> set[str]:
        """The regions whose corners have handles: every region with the region tool (while
        no polygon is being drawn), else the selected one."""
        if self.tool == "region" and not self.drawing.active:
            return {r.uuid for r in self.regions}
        return {self.selected_region} if self.selected_region else set()

    def corner_at(self, pos: QPointF) -> tuple[str, int] | None:
        """The (region uuid, corner index) of the handle under a widget position."""
        if not self.regions:
            return None
        x, y = self.view_to_image(QPointF(pos))
        return handle_at(self.regions, self.handle_regions(), x, y, self._zoom)

    def finish_polygon(self) -> bool:
        """Close the polygon being drawn (double-click, Enter): False with under 3 corners."""
        corners = self.drawing.corners
        if len(corners) < 3:
            return False
        points = np.array(corners, dtype=np.float64)
        self.drawing.clear()
        self.update()
        self.regionDrawn.emit("polygon", points)
        return True

    def cancel_drawing(self) -> bool:
        if not self.drawing.active:
            return False
        self.drawing.clear()
        self.update()
        return True

    def _clamped(self, pos: QPointF) -> tuple[float, float]:
        x, y = self.view_to_image(pos)
        return (min(max(x, 0.0), float(self.handle.width)),
                min(max(y, 0.0), float(self.handle.height)))

    def clear_ruler(self) -> None:
        if self.ruler is not None:
            self.ruler = None
            self.measured.emit("")
            self.update()

    def set_marker_style(self, style: str | None = None, size: int | None = None,
                         opacity: float | None = None, outline: float | None = None) -> None:
        if style is not None:
            self.marker_style = style
        if size is not None:
            self.marker_size = int(size)
        if opacity is not None:
            self.marker_opacity = min(1.0, max(0.0, float(opacity)))
        if outline is not None:
            self.marker_outline = max(0.1, float(outline))
        self.update()

    def set_display_filter(self, fn: Callable[[QImage], None] | None) -> None:
        """Show the tiles through ``fn`` (in place on an RGB32 image), None: as they are."""
        self.display_filter = fn
        self._display_version += 1
        self._display_tiles.clear()
        self._base = self._base_key = None
        self.update()

    def _displayed(self, key: TileKey, img: QImage) -> QImage:
        """A tile as the display settings show it (while the view's tiles are loading)."""
        if self.display_filter is None:
            return img
        found = self._display_tiles.get(key)
        if found is None:
            if len(self._display_tiles) > 256:
                self._display_tiles.clear()
            found = img.copy()
            self.display_filter(found)
            self._display_tiles[key] = found
        return found

    def marker_look(self) -> tuple[str, int]:
        """Style and on-screen size at the current zoom: markers shrink (as the square root)
        when zoomed out, to no less than 4 px, and small rings become dots, so a crowded slide
        reads as a map of classes rather than a tangle of circles."""
        size = max(4, round(self.marker_size * min(1.0, self._zoom) ** 0.5))
        style = self.marker_style
        if style in ("circle", "cross") and size < 8:
            style = "dot"
        return style, size

    def set_markers_visible(self, visible: bool) -> None:
        self.markers_visible = bool(visible)
        self.update()

    # --- painting ----------------------------------------------------------------------------
    def _top_key(self) -> TileKey:
        return TileKey(self.handle.id, self._levels - 1, 0, 0)

    def _on_tile_loaded(self, key: TileKey) -> None:
        if self.handle is not None and key.source == self.handle.id:
            self.update()

    def _screen_rect(self, x0: float, y0: float, w0: float, h0: float) -> QRect:
        """Level-0 rectangle -> widget pixels with rounded edges (no seams between tiles)."""
        z = self._zoom
        left, top = round(x0 * z - self._ox), round(y0 * z - self._oy)
        right, bottom = round((x0 + w0) * z - self._ox), round((y0 + h0) * z - self._oy)
        return QRect(left, top, max(1, right - left), max(1, bottom - top))

    def paintEvent(self, event: QPaintEvent) -> None:
        t0 = time.perf_counter()
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self.handle is None:
            p.setPen(QColor("#bbbbbb"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
            p.end()
            return
        self._paint_tiles(p)
        if self.markers_visible and len(self.layer):
            self._paint_overlay(p)
        if self.regions:
            paint_regions(p, self.regions, self.selected_region, self.image_to_view)
            paint_handles(p, self.regions, self.handle_regions(), self._corner,
                          self.image_to_view)
        paint_drawing(p, self.drawing, self.image_to_view)
        self._paint_selection(p)
        if self._band is not None:
            p.setPen(QPen(QColor("#ffffff"), 1, Qt.PenStyle.DashLine))
            p.setBrush(QColor(255, 255, 255, 40))
            p.drawRect(self._band.normalized())
        if self.ruler is not None:
            paint_ruler(p, self.ruler, self.image_to_view, self.handle.mpp)
        self._paint_scale_bar(p)
        self._paint_overview(p)
        p.end()
        self.stats["paint_ms"] = (time.perf_counter() - t0) * 1e3

    def _tiles_for(self, rect: QRect, k: int) -> list[TileKey]:
        """The level-``k`` tiles under a rectangle of the zoomed image, centre ones first."""
        handle, z = self.handle, self._zoom
        span = TILE_SIZE << k
        cols, rows = grid_size(handle.width, handle.height, k)
        c0 = max(0, int(rect.left() / z // span))
        c1 = min(cols - 1, int(((rect.right() + 1) / z - 1e-9) // span))
        r0 = max(0, int(rect.top() / z // span))
        r1 = min(rows - 1, int(((rect.bottom() + 1) / z - 1e-9) // span))
        cx, cy = (c0 + c1) / 2, (r0 + r1) / 2
        keys = [TileKey(handle.id, k, c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        return sorted(keys, key=lambda t: (t.col - cx) ** 2 + (t.row - cy) ** 2)

    def _paint_tiles(self, p: QPainter) -> None:
        """Blit the cached base image if it covers the view at this zoom; otherwise draw the
        cached tiles (coarser ones standing in for those on their way) and ask for the rest.
        Once every tile of the view and a margin around it is in, they are composed into the
        base image, so panning at a steady zoom is a single blit."""
        handle, cache = self.handle, self.loader.cache
        dpr = self.devicePixelRatioF()
        z = self._zoom
        k = level_for_zoom(z * dpr, self._levels)
        image_area = QRect(0, 0, math.ceil(handle.width * z), math.ceil(handle.height * z))
        view = QRect(int(self._ox), int(self._oy), self.width(), self.height())
        needed = view.intersected(image_area)
        if needed.isEmpty():
            return
        key = (z, handle.id, dpr, k, self._display_version)
        if self._base is not None and self._base_key == key and \
                self._base_rect.contains(needed):
            r = self._base_rect
            p.drawImage(QPoint(int(r.left() - self._ox), int(r.top() - self._oy)), self._base)
            self.stats["tiles_drawn"], self.stats["tiles_missing"] = self._base_tiles, 0
            self._report_tiles_shown()
            return
        region = view.adjusted(-self.width() // 4, -self.height() // 4, self.width() // 4,
                               self.height() // 4).intersected(image_area)
        visible = self._tiles_for(needed, k)
        around = [t for t in self._tiles_for(region, k) if t not in set(visible)]
        missing = [t for t in visible if t not in cache]
        missing_around = [t for t in around if t not in cache]
        smooth = z * dpr < 1.5  # magnified pixels stay crisp; shrunk tiles are smoothed
        if not missing and not missing_around:
            self._compose_base(region, visible + around, key, smooth, dpr)
            self._paint_tiles(p)
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        if missing:
            top = cache.peek(self._top_key())
            full = self._screen_rect(0, 0, handle.width, handle.height)
            if top is not None:
                p.drawImage(full, self._displayed(self._top_key(), top))
            else:
                p.fillRect(full, PLACEHOLDER)
        for t in visible:
            rect0 = tile_rect(t, handle.width, handle.height)
            target = self._screen_rect(*rect0)
            img = cache.get(t)
            if img is not None:
                p.drawImage(target, self._displayed(t, img))
            else:
                self._paint_fallback(p, t, rect0, target)
        self.loader.retain(set(missing) | set(missing_around) | {self._top_key()})
        for rank, t in enumerate(missing + missing_around):
            self.loader.request(handle, t, priority=-rank)
        self.stats["tiles_drawn"] = len(visible) - len(missing)
        self.stats["tiles_missing"] = len(missing)
        if not missing:
            self._report_tiles_shown()

    def _compose_base(self, region: QRect, tiles: list[TileKey], key: tuple, smooth: bool,
                      dpr: float) -> None:
        img = QImage(max(1, round(region.width() * dpr)), max(1, round(region.height() * dpr)),
                     QImage.Format.Format_RGB32)
        img.setDevicePixelRatio(dpr)
        img.fill(BACKGROUND)
        painter = QPainter(img)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.translate(self._ox - region.left(), self._oy - region.top())
        for t in tiles:
            rect0 = tile_rect(t, self.handle.width, self.handle.height)
            painter.drawImage(self._screen_rect(*rect0), self.loader.cache.get(t))
        painter.end()
        if self.display_filter is not None:
            self.display_filter(img)
        self._base, self._base_key, self._base_rect = img, key, QRect(region)
        self._base_tiles = len(tiles)

    def _report_tiles_shown(self) -> None:
        if not self._tiles_reported:
            self._tiles_reported = True
            QTimer.singleShot(0, lambda dt=time.perf_counter() - self._opened_at:
                              self.tilesShown.emit(dt))

    def _paint_fallback(self, p: QPainter, key: TileKey, rect0, target: QRect) -> None:
        """Fill a missing tile from the nearest coarser cached tile (not the top: drawn)."""
        tx, ty, tw, th = rect0
        for k in range(key.level + 1, self._levels - 1):
            shift = k - key.level
            parent = TileKey(key.source, k, key.col >> shift, key.row >> shift)
            img = self.loader.cache.peek(parent)
            if img is None:
                continue
            ds = 1 << k
            px0, py0, _, _ = tile_rect(parent, self.handle.width, self.handle.height)
            src = QRectF((tx - px0) / ds, (ty - py0) / ds, tw / ds, th / ds)
            p.drawImage(QRectF(target), img, src)
            return

    def _paint_overlay(self, p: QPainter) -> None:
        dpr = self.devicePixelRatioF()
        z = self._zoom
        iw, ih = math.ceil(self.handle.width * z), math.ceil(self.handle.height * z)
        style, size = self.marker_look()
        pad = size + 4
        view = QRect(int(self._ox), int(self._oy), self.width(), self.height())
        image_area = QRect(-pad, -pad, iw + 2 * pad, ih + 2 * pad)
        needed = view.intersected(image_area)
        if needed.isEmpty():
            return
        key = (z, self.layer.version, style, size, dpr, self.marker_outline)
        if self._overlay is None or key != self._overlay_key or \
                not self._overlay_rect.contains(needed):
            t0 = time.perf_counter()
            region = view.adjusted(-self.width() // 2, -self.height() // 2,
                                   self.width() // 2, self.height() // 2).intersected(image_area)
            img = QImage(max(1, round(region.width() * dpr)), max(1, round(region.height() * dpr)),
                         QImage.Format.Format_ARGB32_Premultiplied)
            img.setDevicePixelRatio(dpr)
            img.fill(Qt.GlobalColor.transparent)
            m = pad / z
            rows = self.layer.query((region.left()) / z - m, region.top() / z - m,
                                    (region.right() + 1) / z + m, (region.bottom() + 1) / z + m,
                                    exact=False)
            painter = QPainter(img)
            self.stats["markers_drawn"] = paint_markers(
                painter, self.layer, rows, z, region.left(), region.top(), style, size, dpr,
                self.marker_outline)
            painter.end()
            self._overlay, self._overlay_key, self._overlay_rect = img, key, region
            self.stats["overlay_ms"] = (time.perf_counter() - t0) * 1e3
        r = self._overlay_rect
        p.setOpacity(self.marker_opacity)
        p.drawImage(QPoint(int(r.left() - self._ox), int(r.top() - self._oy)), self._overlay)
        p.setOpacity(1.0)

    def _paint_selection(self, p: QPainter) -> None:
        rows = self._selection_rows()
        z, dpr = self._zoom, self.devicePixelRatioF()
        if len(rows):
            xy = self.layer.xy[rows]
            if self._drag == "move" and self._move_to is not None and self._press_row >= 0:
                xy = xy.copy()
                xy[rows == self._press_row] = self._move_to
            _, size = self.marker_look()
            sprite = marker_sprite("circle", size + 8, SELECTION_COLOUR, dpr)
            draw_sprites(p, sprite, xy[:, 0] * z - self._ox, xy[:, 1] * z - self._oy)
            if len(rows) <= 50 and self.fov_px * z >= 16:
                p.setPen(QPen(SELECTION_COLOUR, 1, Qt.PenStyle.DashLine))
                p.setBrush(Qt.BrushStyle.NoBrush)
                half = self.fov_px // 2
                for x, y in xy:
                    ox, oy = math.floor(x) - half, math.floor(y) - half
                    p.drawRect(self._screen_rect(ox, oy, self.fov_px, self.fov_px))
        if self._drag == "move" and self._move_to is not None and self._press_row >= 0:
            colours = self.layer.palette()
            key = int(self.layer.colour_keys()[self._press_row])
            style, size = self.marker_look()
            sprite = marker_sprite(style, size, colours[key], dpr)
            x, y = self._move_to
            draw_sprites(p, sprite, np.array([x * z - self._ox]), np.array([y * z - self._oy]))

    def _paint_scale_bar(self, p: QPainter) -> None:
        mpp = self.handle.mpp
        if not mpp:
            return
        um_per_screen_px = mpp / self._zoom
        length_um = nice_length(140 * um_per_screen_px)
        if length_um <= 0:
            return
        px = length_um / um_per_screen_px
        # bottom right: the legend overlay takes the bottom left, the overview the top right
        x, y = self.width() - 16 - px, self.height() - 18
        label = f"{length_um:g} µm" if length_um < 1000 else f"{length_um / 1000:g} mm"
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.fillRect(QRectF(x - 6, y - 22, px + 12, 32), QColor(0, 0, 0, 140))
        p.fillRect(QRectF(x, y, px, 4), QColor("#ffffff"))
        p.setPen(QColor("#ffffff"))
        font = QFont(p.font())
        font.setPointSizeF(9)
        p.setFont(font)
        p.drawText(QRectF(x, y - 20, px, 18), Qt.AlignmentFlag.AlignCenter, label)

    def overview_rect(self) -> QRect:
        """Where the overview thumbnail sits (empty when the whole image is on screen)."""
        if self.handle is None:
            return QRect()
        x0, y0, x1, y1 = self.visible_image_rect()
        if x0 <= 0 and y0 <= 0 and x1 >= self.handle.width and y1 >= self.handle.height:
            return QRect()
        s = OVERVIEW_MAX / max(self.handle.width, self.handle.height)
        w, h = max(8, round(self.handle.width * s)), max(8, round(self.handle.height * s))
        return QRect(self.width() - w - 10, 10, w, h)

    def _paint_overview(self, p: QPainter) -> None:
        box = self.overview_rect()
        if box.isEmpty():
            return
        top = self.loader.cache.peek(self._top_key())
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.fillRect(box.adjusted(-2, -2, 2, 2), QColor(0, 0, 0, 160))
        if top is not None:
            p.drawImage(box, top)
        else:
            p.fillRect(box, PLACEHOLDER)
        s = box.width() / self.handle.width
        x0, y0, x1, y1 = self.visible_image_rect()
        r = QRectF(box.left() + x0 * s, box.top() + y0 * s, (x1 - x0) * s, (y1 - y0) * s)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor("#ff3030"), 1.5))
        p.drawRect(r.intersected(QRectF(box)))

    # --- mouse and keys ----------------------------------------------------------------------
    def mousePressEvent(self, e: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self.handle is None:
            return
        pos = e.position()
        self._press, self._last = pos, pos
        self._press_button, self._press_mods = e.button(), e.modifiers()
        self._drag = None
        self._press_row = -1
        if e.button() == Qt.MouseButton.MiddleButton:
            self._drag = "pan"
            return
        if e.button() != Qt.MouseButton.LeftButton:
            return
        if self.overview_rect().contains(pos.toPoint()):
            self._drag = "overview"
            self._jump_overview(pos)
            return
        mods = e.modifiers()
        if self.tool in ("select", "region") and not mods & Qt.KeyboardModifier.ControlModifier:
            hit = self.corner_at(pos)
            if hit is not None:
                self._drag = "corner"
                self._corner = CornerDrag(hit[0], hit[1], *self._clamped(pos))
                return
        if self.tool == "measure":
            x, y = self.view_to_image(pos)
            self.ruler = Ruler(x, y, x, y)
            self._drag = "measure"
            self.update()
            return
        if self.tool == "region":
            self._drag = None  # a drag becomes a rectangle, a click a corner (on release)
            return
        if self.tool == "add" or mods & Qt.KeyboardModifier.ControlModifier:
            x, y = self.view_to_image(pos)
            if 0 <= x < self.handle.width and 0 <= y < self.handle.height:
                self.addRequested.emit(x, y)
            self._press = None
            return
        self._press_row = self.marker_at(pos)

    def mouseMoveEvent(self, e: QMouseEvent) -> None:
        pos = e.position()
        if self.handle is not None:
            x, y = self.view_to_image(pos)
            inside = 0 <= x < self.handle.width and 0 <= y < self.handle.height
            self.cursorMoved.emit(x if inside else math.nan, y if inside else math.nan)
        if self.tool == "region" and self.handle is not None:
            self.drawing.hover = self._clamped(pos) if self.drawing.corners else None
            if self.drawing.corners:
                self.update()
        if self._press is None and self.regions and self.handle is not None:
            over = self.tool in ("select", "region") and self.corner_at(pos) is not None
            self.setCursor(Qt.CursorShape.SizeAllCursor if over else self._tool_cursor())
        if self._press is None:
            return
        if self._drag is None:
            moved = (pos - self._press).manhattanLength() >= DRAG_THRESHOLD
            if not moved:
                return
            if self.tool == "region" and self._press_button == Qt.MouseButton.LeftButton:
                if self.drawing.corners:
                    return  # drawing a polygon: clicks only
                self._drag = "region"
                self.drawing.rect_from = self._clamped(self._press)
            elif self._press_mods & Qt.KeyboardModifier.ShiftModifier:
                self._drag = "band"
            elif self._press_row >= 0:
                self._drag = "move"
                cid = str(self.layer.ids[self._press_row])
                if cid not in self._selected:
                    self.select_ids([cid])
            else:
                self._drag = "pan"
        if self._drag == "pan":
            d = pos - self._last
            self.pan_by(d.x(), d.y())
        elif self._drag == "overview":
            self._jump_overview(pos)
        elif self._drag == "measure" and self.ruler is not None:
            self.ruler.x1, self.ruler.y1 = self.view_to_image(pos)
            self.measured.emit(self.ruler.label(self.handle.mpp))
            self.update()
        elif self._drag == "region":
            self.drawing.rect_to = self._clamped(pos)
            self.update()
        elif self._drag == "corner" and self._corner is not None:
            self._corner.x, self._corner.y = self._clamped(pos)
            self.update()
        elif self._drag == "band":
            self._band = QRectF(self._press, pos)
            self.update()
        elif self._drag == "move":
            x, y = self.view_to_image(pos)
            x = min(max(x, 0.0), self.handle.width - 1e-3)
            y = min(max(y, 0.0), self.handle.height - 1e-3)
            self._move_to = (x, y)
            self.update()
        self._last = pos

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        if self._press is None or self.handle is None:
            self._press = None
            return
        drag, row = self._drag, self._press_row
        shift = bool(self._press_mods & Qt.KeyboardModifier.ShiftModifier)
        press, self._press, self._drag = self._press, None, None
        if drag == "corner":
            corner, self._corner = self._corner, None
            self.update()
            moved = (e.position() - press).manhattanLength() >= DRAG_THRESHOLD
            if corner is not None and moved:
                x, y = self._clamped(e.position())
                self.vertexMoved.emit(corner.uuid, corner.index, x, y)
            return
        if drag == "measure":
            if self.ruler is not None and self.ruler.length_px == 0:
                self.clear_ruler()  # a click without a drag clears the last measurement
            self.update()
            return
        if drag == "region":
            a, b = self.drawing.rect_from, self._clamped(e.position())
            self.drawing.clear()
            self.update()
            if a is not None and abs(a[0] - b[0]) > 0 and abs(a[1] - b[1]) > 0:
                self.regionDrawn.emit("rectangle", np.array([a, b], dtype=np.float64))
            return
        if self.tool == "region":
            if drag is None and self._press_button == Qt.MouseButton.LeftButton:
                self.drawing.corners.append(self._clamped(press))
                self.update()
            return
        if drag == "move" and self._move_to is not None and row >= 0:
            x, y = self._move_to
            self._move_to = None
            self.moveRequested.emit(str(self.layer.ids[row]), x, y)
        elif drag == "band" and self._band is not None:
            band = self._band.normalized()
            self._band = None
            ax, ay = self.view_to_image(band.topLeft())
            bx, by = self.view_to_image(band.bottomRight())
            rows = self.layer.query(ax, ay, bx, by)
            new = [str(i) for i in self.layer.ids[np.sort(rows)]]
            seen = set(self._selected)
            self.select_ids(self._selected + [i for i in new if i not in seen])
        elif drag is None and self._press_button == Qt.MouseButton.LeftButton:
            if row >= 0:
                cid = str(self.layer.ids[row])
                if shift:
                    sel = [i for i in self._selected if i != cid]
                    self.select_ids(sel if cid in self._selected else self._selected + [cid])
                else:
                    self.select_ids([cid])
            elif not shift:
                self.select_ids([])
        self._move_to = None
        self.update()

    def mouseDoubleClickEvent(self, e: QMouseEvent) -> None:
        if self.tool == "region":
            self._press = None  # (its release adds no corner)
            if self.handle is not None:  # the double-click's place is the last corner
                x, y = self._clamped(e.position())
                last = self.drawing.corners[-1] if self.drawing.corners else None
                if last is None or math.hypot((x - last[0]) * self._zoom,
                                              (y - last[1]) * self._zoom) > DRAG_THRESHOLD:
                    self.drawing.corners.append((x, y))
            self.finish_polygon()
            return
        if self.handle is not None and e.button() == Qt.MouseButton.LeftButton and \
                self.tool == "select" and self.marker_at(e.position()) < 0:
            self.set_zoom(self._zoom * 2, e.position())

    def wheelEvent(self, e: QWheelEvent) -> None:
        if self.handle is None:
            return
        steps = e.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self._zoom * (1.25 ** steps), e.position())
        e.accept()

    def _jump_overview(self, pos: QPointF) -> None:
        box = self.overview_rect()
        if box.isEmpty():
            return
        s = box.width() / self.handle.width
        self.centre_on((pos.x() - box.left()) / s, (pos.y() - box.top()) / s)

    def keyPressEvent(self, e: QKeyEvent) -> None:
        key, step = e.key(), 120
        mods = e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
            e.ignore()  # Ctrl+Z and friends belong to the window
            return
        if self.tool == "region" and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.finish_polygon()
        elif self.tool == "region" and key == Qt.Key.Key_Backspace and self.drawing.corners:
            self.drawing.corners.pop()
            self.update()
        elif key == Qt.Key.Key_Escape and self.cancel_drawing():
            pass  # the region being drawn is dropped; the tool stays
        elif key == Qt.Key.Key_Escape:
            self.set_tool("select")
            self.select_ids([])
            self.clear_ruler()
        elif key == Qt.Key.Key_R:
            self.set_tool("select" if self.tool == "region" else "region")
        elif key == Qt.Key.Key_F:
            self.fit()
        elif key == Qt.Key.Key_A:
            self.set_tool("select" if self.tool == "add" else "add")
        elif key == Qt.Key.Key_M:
            self.set_tool("select" if self.tool == "measure" else "measure")
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_zoom(self._zoom * 1.25)
        elif key == Qt.Key.Key_Minus:
            self.set_zoom(self._zoom / 1.25)
        elif key == Qt.Key.Key_Left:
            self.pan_by(step, 0)
        elif key == Qt.Key.Key_Right:
            self.pan_by(-step, 0)
        elif key == Qt.Key.Key_Up:
            self.pan_by(0, step)
        elif key == Qt.Key.Key_Down:
            self.pan_by(0, -step)
        else:
            e.ignore()  # digits, Delete, ...: the main window applies them to the selection
            return
        e.accept()
