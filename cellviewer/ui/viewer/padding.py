"""Crops that leave the image: where their reflect-padding is, and how it is drawn.

A cell near the image's border has a crop window that runs off the image; the cropper fills
the missing part by reflecting the part inside (as the study's pipeline does), so those pixels
are a mirror image, not tissue. The gallery, the blur preview and the cell details mark that
part (a hatched band beyond a dashed line) so a mirrored half-cell is not taken for a cell's
shape, and the details say how much of the crop is padding and how many selected cells have
padded crops. The geometry follows :mod:`cellviewer.core.cells.crop`: a window of side S has
its origin at ``floor(x) - S // 2``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen

from cellviewer.core.cells.crop import PATCH_SIZE

#: (x0, y0, x1, y1): the part of a patch that comes from inside the image, in patch pixels
Inside = tuple[float, float, float, float]
HATCH = QColor(255, 0, 255, 110)
EDGE = QColor(255, 255, 255, 230)


def window_origins(xy: np.ndarray, window_px: int) -> np.ndarray:
    """(N, 2) level-0 origins of the crop windows around cells ``xy`` (the cropper's rule)."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.floor(pts).astype(np.int64) - int(window_px) // 2


def padded_mask(xy: np.ndarray, window_px: int, width: int, height: int) -> np.ndarray:
    """(N,) bool: the cell's crop window leaves the image (it is reflect-padded)."""
    o = window_origins(xy, window_px)
    s = int(window_px)
    return (o[:, 0] < 0) | (o[:, 1] < 0) | (o[:, 0] + s > width) | (o[:, 1] + s > height)


def inside_rect(origin: tuple[int, int] | np.ndarray, window_px: int, width: int, height: int,
                patch: int = PATCH_SIZE) -> Inside | None:
    """The part of the patch from inside the image, in patch pixels; None when it all is."""
    ox, oy = int(origin[0]), int(origin[1])
    s = int(window_px)
    x0, y0 = max(0, -ox), max(0, -oy)
    x1, y1 = min(s, width - ox), min(s, height - oy)
    if (x0, y0, x1, y1) == (0, 0, s, s):
        return None
    k = patch / s
    return (x0 * k, y0 * k, max(x0, x1) * k, max(y0, y1) * k)


def inside_rects(xy: np.ndarray, window_px: int, width: int, height: int) -> list[Inside | None]:
    """:func:`inside_rect` for each cell of ``xy``."""
    return [inside_rect(o, window_px, width, height)
            for o in window_origins(xy, window_px)]


def padded_share(inside: Inside | None, patch: int = PATCH_SIZE) -> float:
    """The share of the patch that is padding (0 when none is)."""
    if inside is None:
        return 0.0
    x0, y0, x1, y1 = inside
    return 1.0 - (x1 - x0) * (y1 - y0) / float(patch * patch)


def describe(inside: Inside | None) -> str:
    """For the cell details: whether the crop is padded, and how much."""
    if inside is None:
        return "inside the image"
    return (f"reflect-padded: {padded_share(inside):.0%} of the patch lies beyond the image "
            "border (mirrored)")


def paint_padding(p: QPainter, target: QRectF, inside: Inside | None,
                  patch: int = PATCH_SIZE) -> None:
    """Hatch the padded part of a patch drawn at ``target`` and dash the image's edge."""
    if inside is None:
        return
    k = target.width() / patch
    x0, y0, x1, y1 = inside
    inner = QRectF(target.left() + x0 * k, target.top() + y0 * k, (x1 - x0) * k, (y1 - y0) * k)
    outside = QPainterPath()
    outside.addRect(target)
    kept = QPainterPath()
    kept.addRect(inner)
    p.save()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(HATCH, Qt.BrushStyle.BDiagPattern))
    p.drawPath(outside.subtracted(kept))
    p.setBrush(QColor(255, 0, 255, 40))
    p.drawPath(outside.subtracted(kept))
    pen = QPen(EDGE, max(1.0, k / 2), Qt.PenStyle.DashLine)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRect(inner)
    p.restore()
