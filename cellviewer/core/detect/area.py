"""Where to detect: a box in full-resolution pixels, optionally with a polygon inside it.

A region is its bounding box plus its polygon (detections outside the polygon are dropped); the
visible area and a whole image or slide are plain boxes. Coordinates are level-0 pixels, x the
column and y the row, pixel centres at integers (the project's convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.measure import points_in_poly


@dataclass(frozen=True)
class Area:
    """The box ``x0 <= x < x1``, ``y0 <= y < y1`` and, optionally, a polygon ((N, 2) x, y)."""

    x0: float
    y0: float
    x1: float
    y1: float
    polygon: np.ndarray | None = None

    @classmethod
    def whole(cls, width: int, height: int) -> Area:
        return cls(0.0, 0.0, float(width), float(height))

    @classmethod
    def box(cls, x: float, y: float, w: float, h: float) -> Area:
        """A rectangle such as the visible part of the view."""
        if not (w > 0 and h > 0):
            raise ValueError(f"an area needs a positive size, got {w} x {h}")
        return cls(float(x), float(y), float(x + w), float(y + h))

    @classmethod
    def from_polygon(cls, points: Sequence[Sequence[float]] | np.ndarray) -> Area:
        """A region's polygon (its outer ring, (x, y) vertices; closing vertex optional)."""
        poly = np.asarray(points, dtype=np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
            raise ValueError(f"a polygon needs at least 3 (x, y) vertices, got shape {poly.shape}")
        if not np.isfinite(poly).all():
            raise ValueError("the polygon has a vertex that is not a finite number")
        (x0, y0), (x1, y1) = poly.min(axis=0), poly.max(axis=0)
        if not (x1 > x0 and y1 > y0):
            raise ValueError("the polygon has no area")
        return cls(float(x0), float(y0), float(x1), float(y1), poly)

    def clipped(self, width: int, height: int) -> Area | None:
        """This area inside an image of that size (None when it misses the image)."""
        x0, y0 = max(self.x0, 0.0), max(self.y0, 0.0)
        x1, y1 = min(self.x1, float(width)), min(self.y1, float(height))
        if x1 <= x0 or y1 <= y0:
            return None
        return Area(x0, y0, x1, y1, self.polygon)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    def working_box(self, downsample: float) -> tuple[int, int, int, int]:
        """(c0, r0, c1, r1): the working-pixel columns and rows that cover the box."""
        return (math.floor(self.x0 / downsample), math.floor(self.y0 / downsample),
                math.ceil(self.x1 / downsample), math.ceil(self.y1 / downsample))

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Which of the points lie in the box (and the polygon, if any)."""
        inside = (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)
        if self.polygon is not None and inside.any():
            idx = np.flatnonzero(inside)
            inside[idx] = points_in_poly(np.column_stack([x[idx], y[idx]]), self.polygon)
        return inside
