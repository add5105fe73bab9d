"""The viewer's ruler: drag with the Measure tool (``M``) to measure a distance on the image.

The line is kept in level-0 image pixels, so it stays on the tissue while the user zooms and
pans, until the next measurement, ``Esc`` or another image. Its label gives µm where the pixel
size is known (:func:`cellviewer.core.formatting.format_length`), pixels otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen

from cellviewer.core.formatting import format_length

RULER_COLOUR = QColor("#00e5ff")
END_TICK = 6  # screen px: half the length of the ticks at the ends


@dataclass
class Ruler:
    """A measured segment in level-0 pixels (start == end while the drag has not moved)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def length_px(self) -> float:
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)

    def label(self, mpp: float | None) -> str:
        return format_length(self.length_px, mpp)


def paint_ruler(p: QPainter, ruler: Ruler, to_view: Callable[[float, float], QPointF],
                mpp: float | None) -> None:
    """The segment with end ticks and its length beside its middle, on a dark plate so it
    reads on any stain."""
    a, b = to_view(ruler.x0, ruler.y0), to_view(ruler.x1, ruler.y1)
    dx, dy = b.x() - a.x(), b.y() - a.y()
    n = math.hypot(dx, dy)
    p.save()
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setPen(QPen(QColor(0, 0, 0, 170), 4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    p.drawLine(a, b)
    p.setPen(QPen(RULER_COLOUR, 2, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    p.drawLine(a, b)
    if n > 0:
        tx, ty = -dy / n * END_TICK, dx / n * END_TICK  # perpendicular ticks
        for end in (a, b):
            p.drawLine(QPointF(end.x() - tx, end.y() - ty), QPointF(end.x() + tx, end.y() + ty))
    font = QFont(p.font())
    font.setPointSizeF(9.5)
    p.setFont(font)
    text = ruler.label(mpp)
    fm = QFontMetricsF(font)
    w, h = fm.horizontalAdvance(text) + 10, fm.height() + 4
    mid = QPointF((a.x() + b.x()) / 2, (a.y() + b.y()) / 2)
    box = QRectF(mid.x() + 10, mid.y() - h - 6, w, h)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(0, 0, 0, 170))
    p.drawRoundedRect(box, 3, 3)
    p.setPen(QColor("#ffffff"))
    p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
    p.restore()
