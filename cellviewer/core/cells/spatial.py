"""A spatial index over the cells of one image: rectangle and nearest-point queries without a
scan, in NumPy (no Qt), so the viewer, the editor and scripts share it."""

from __future__ import annotations

import math

import numpy as np


class GridIndex:
    """Points bucketed on a regular grid: rectangle and nearest-point queries without a scan.

    The points are sorted by bucket once (``O(N log N)``); a query visits only the buckets the
    rectangle touches, each one a contiguous slice of the sorted order.
    """

    def __init__(self, xy: np.ndarray, width: float, height: float) -> None:
        self.xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        self.extent = (int(width), int(height))  # as asked: who adopts it compares its own
        n = len(self.xy)
        width, height = max(1.0, float(width)), max(1.0, float(height))
        if n:  # the image's true extent may be smaller than the points' (cells outside)
            width = max(width, float(self.xy[:, 0].max()) + 1)
            height = max(height, float(self.xy[:, 1].max()) + 1)
        # about 4 points per bucket, never finer than 16 px nor more than ~4 M buckets
        cell = math.sqrt(width * height * 4.0 / max(n, 1))
        cell = max(16.0, cell, math.sqrt(width * height / 4e6))
        self.cell = cell
        self.cols = max(1, int(math.ceil(width / cell)))
        self.rows = max(1, int(math.ceil(height / cell)))
        gx = np.clip((self.xy[:, 0] // cell).astype(np.int64), 0, self.cols - 1)
        gy = np.clip((self.xy[:, 1] // cell).astype(np.int64), 0, self.rows - 1)
        keys = gy * self.cols + gx
        if n:
            lo, hi = self.xy.min(axis=0), self.xy.max(axis=0)
            self.bbox = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        else:
            self.bbox = (0.0, 0.0, -1.0, -1.0)
        self.order = np.argsort(keys, kind="stable")
        self.starts = np.searchsorted(keys[self.order], np.arange(self.cols * self.rows + 1))

    def __len__(self) -> int:
        return len(self.xy)

    def query(self, x0: float, y0: float, x1: float, y1: float,
              exact: bool = True) -> np.ndarray:
        """Indices of the points with x0 <= x <= x1 and y0 <= y <= y1 (int64, unordered).

        ``exact=False`` returns every point of the buckets the rectangle touches, a few more
        than asked, without testing them: what drawing wants (the painter clips the rest)."""
        n = len(self.xy)
        if n == 0 or x1 < x0 or y1 < y0:
            return np.empty(0, dtype=np.int64)
        bx0, by0, bx1, by1 = self.bbox
        if x0 <= bx0 and y0 <= by0 and x1 >= bx1 and y1 >= by1:
            return np.arange(n, dtype=np.int64)  # everything: no per-point test
        c0 = max(0, int(x0 // self.cell))
        c1 = min(self.cols - 1, int(x1 // self.cell))
        r0 = max(0, int(y0 // self.cell))
        r1 = min(self.rows - 1, int(y1 // self.cell))
        if c1 < c0 or r1 < r0:
            return np.empty(0, dtype=np.int64)
        if c0 == 0 and r0 == 0 and c1 == self.cols - 1 and r1 == self.rows - 1:
            cand = self.order
        else:
            rows = np.arange(r0, r1 + 1) * self.cols
            lo, hi = self.starts[rows + c0], self.starts[rows + c1 + 1]
            cand = np.concatenate([self.order[a:b] for a, b in zip(lo, hi, strict=True)])
        if not exact:
            return cand
        pts = self.xy[cand]
        inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
        return cand[inside]

    def nearest(self, x: float, y: float, radius: float, mask: np.ndarray | None = None) -> int:
        """The index of the point nearest (x, y) within ``radius`` (allowed by ``mask``), or -1."""
        cand = self.query(x - radius, y - radius, x + radius, y + radius)
        if mask is not None and len(cand):
            cand = cand[mask[cand]]
        if len(cand) == 0:
            return -1
        d2 = ((self.xy[cand] - (x, y)) ** 2).sum(axis=1)
        best = int(np.argmin(d2))
        return int(cand[best]) if d2[best] <= radius * radius else -1
