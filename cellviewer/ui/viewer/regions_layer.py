"""Regions on the slide view: their outlines with names, and the region being drawn.

The view holds a list of :class:`RegionShape` (set by the Regions tool from the store, never
edited here) and a :class:`RegionDrawing` while the region tool is active: a drag draws a
rectangle; clicks place a polygon's corners, closed by a double-click or Enter; Esc cancels,
Backspace takes the last corner back. What was drawn leaves the view as a request
(``SlideView.regionDrawn``); the tool turns it into the core's edit.

Corner handles: the selected region's corners (every region's while the region tool is
active) are drawn as small squares; dragging one shows the moved outline (a
:class:`CornerDrag`) and, on release, leaves the view as ``SlideView.vertexMoved(uuid,
index, x, y)``, which the tool makes the core's one undoable ``move_vertex`` edit. The index
is the corner's place in the stored outer ring (the closing vertex not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF

REGION_COLOUR = QColor("#00e5ff")
SELECTED_REGION_COLOUR = QColor("#ffff00")
DRAWING_COLOUR = QColor("#ff9100")
HANDLE_PX = 7  # a corner handle's side on screen
HANDLE_HIT_PX = 8  # how near (screen px) a press must be to take a handle


@dataclass
class RegionShape:
    uuid: str
    name: str
    exterior: np.ndarray  # (N, 2) level-0 px, closed or not
    colour: QColor = field(default_factory=lambda: QColor(REGION_COLOUR))
    holes: list[np.ndarray] = field(default_factory=list)


@dataclass
class RegionDrawing:
    """The region being drawn (level-0 px)."""

    corners: list[tuple[float, float]] = field(default_factory=list)
    rect_from: tuple[float, float] | None = None
    rect_to: tuple[float, float] | None = None
    hover: tuple[float, float] | None = None

    @property
    def active(self) -> bool:
        return bool(self.corners) or self.rect_from is not None

    def clear(self) -> None:
        self.corners.clear()
        self.rect_from = self.rect_to = self.hover = None


def _path(points: np.ndarray, to_view) -> QPolygonF:
    return QPolygonF([to_view(float(x), float(y)) for x, y in points])


def paint_regions(p: QPainter, shapes: list[RegionShape], selected: str | None,
                  to_view) -> None:
    """Outlines (a dark rim under a bright line, readable on any stain) and names."""
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    font = QFont(p.font())
    font.setPointSizeF(9)
    font.setBold(True)
    p.setFont(font)
    for shape in shapes:
        path = QPainterPath()
        path.addPolygon(_path(shape.exterior, to_view))
        path.closeSubpath()
        for hole in shape.holes:
            path.addPolygon(_path(hole, to_view))
            path.closeSubpath()
        colour = SELECTED_REGION_COLOUR if shape.uuid == selected else shape.colour
        width = 3.0 if shape.uuid == selected else 2.0
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(0, 0, 0, 180), width + 2))
        p.drawPath(path)
        p.setPen(QPen(colour, width))
        p.drawPath(path)
        if shape.name and len(shape.exterior):
            top = int(np.argmin(shape.exterior[:, 1] * 1e6 + shape.exterior[:, 0]))
            at = to_view(float(shape.exterior[top, 0]), float(shape.exterior[top, 1]))
            box = QRectF(at.x(), at.y() - 18, 8 + 7 * len(shape.name), 16)
            p.fillRect(box, QColor(0, 0, 0, 150))
            p.setPen(colour)
            p.drawText(box.adjusted(4, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, shape.name)


def paint_drawing(p: QPainter, drawing: RegionDrawing, to_view) -> None:
    """The rectangle being dragged, or the polygon's corners and the rubber line to the
    pointer."""
    if not drawing.active:
        return
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    pen = QPen(DRAWING_COLOUR, 2, Qt.PenStyle.DashLine)
    p.setPen(pen)
    p.setBrush(QColor(255, 145, 0, 40))
    if drawing.rect_from is not None and drawing.rect_to is not None:
        a, b = to_view(*drawing.rect_from), to_view(*drawing.rect_to)
        p.drawRect(QRectF(a, b).normalized())
        return
    points = [to_view(x, y) for x, y in drawing.corners]
    if drawing.hover is not None:
        points.append(to_view(*drawing.hover))
    p.drawPolygon(QPolygonF(points))
    p.setPen(QPen(QColor("#000000"), 1))
    p.setBrush(DRAWING_COLOUR)
    for q in points[:len(drawing.corners)]:
        p.drawEllipse(QPointF(q), 4, 4)


@dataclass
class CornerDrag:
    """A corner being dragged: which region and corner, and where it is now (level-0 px)."""

    uuid: str
    index: int
    x: float
    y: float


def corners(shape: RegionShape) -> np.ndarray:
    """A region's corners: its outer ring without the closing vertex."""
    ring = np.asarray(shape.exterior, dtype=np.float64).reshape(-1, 2)
    if len(ring) > 1 and (ring[0] == ring[-1]).all():
        ring = ring[:-1]
    return ring


def handle_at(shapes: list[RegionShape], uuids: set[str], x: float, y: float, zoom: float
              ) -> tuple[str, int] | None:
    """The (region uuid, corner index) whose handle lies nearest the level-0 point (x, y)
    within :data:`HANDLE_HIT_PX` screen pixels, among the regions in ``uuids``; None if
    none."""
    best: tuple[float, str, int] | None = None
    reach = HANDLE_HIT_PX / max(zoom, 1e-12)
    for shape in shapes:
        if shape.uuid not in uuids:
            continue
        ring = corners(shape)
        if not len(ring):
            continue
        d = np.hypot(ring[:, 0] - x, ring[:, 1] - y)
        i = int(np.argmin(d))
        if d[i] <= reach and (best is None or d[i] < best[0]):
            best = (float(d[i]), shape.uuid, i)
    return None if best is None else (best[1], best[2])


def paint_handles(p: QPainter, shapes: list[RegionShape], uuids: set[str],
                  drag: CornerDrag | None, to_view) -> None:
    """The corner handles of the regions in ``uuids``, and the outline being reshaped."""
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    half = HANDLE_PX / 2
    for shape in shapes:
        if shape.uuid not in uuids:
            continue
        ring = corners(shape)
        if drag is not None and drag.uuid == shape.uuid and 0 <= drag.index < len(ring):
            ring = ring.copy()
            ring[drag.index] = (drag.x, drag.y)
            p.setPen(QPen(DRAWING_COLOUR, 2, Qt.PenStyle.DashLine))
            p.setBrush(QColor(255, 145, 0, 40))
            p.drawPolygon(_path(ring, to_view))
        p.setPen(QPen(QColor("#000000"), 1))
        for i, (x, y) in enumerate(ring):
            q = to_view(float(x), float(y))
            moving = drag is not None and drag.uuid == shape.uuid and drag.index == i
            p.setBrush(DRAWING_COLOUR if moving else QColor("#ffffff"))
            p.drawRect(QRectF(q.x() - half, q.y() - half, HANDLE_PX, HANDLE_PX))
