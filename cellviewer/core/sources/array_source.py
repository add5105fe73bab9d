"""An image held in memory as an (H, W, 3) uint8 array, with a lazily built pyramid.

Plain images (PNG, JPEG, ...) have one resolution; a viewer zoomed out on a large one would
otherwise resample the whole image for every frame. So the source presents OpenSlide-like levels,
each half the size of the one before (ceil), until the longer side is at most
:data:`PYRAMID_MIN_SIZE`. Only the level sizes are computed up front; a level's pixels are made
(2x2 box average of the level above, by Pillow's ``reduce``) the first time it is read.

Thread safety: level arrays are never modified once built, so reads are plain slices from several
threads at once; building a level takes a lock (checked twice, so it is built once).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from .base import ImageReadError, ImageSource, check_region, white

PYRAMID_MIN_SIZE = 512


def pyramid_dimensions(width: int, height: int, min_size: int = PYRAMID_MIN_SIZE) -> list[tuple]:
    """Level sizes: halve (rounding up) until the longer side is at most ``min_size``."""
    dims = [(int(width), int(height))]
    while max(dims[-1]) > min_size:
        w, h = dims[-1]
        dims.append(((w + 1) // 2, (h + 1) // 2))
    return dims


class ArraySource(ImageSource):
    """An in-memory RGB image. Also handy on its own: ``crop_patches(ArraySource(tile), xy)``.

    The array is used as is (not copied); do not modify it while the source is in use.
    """

    def __init__(
        self,
        pixels: np.ndarray,
        path: str | os.PathLike | None = None,
        mpp: float | None = None,
        format: str = "array",
        *,
        pyramid: bool = True,
    ):
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"pixels must be (H, W, 3) uint8, got {pixels.shape} {pixels.dtype}")
        h, w = pixels.shape[:2]
        self.path = Path(path) if path is not None else Path("<array>")
        self.format = format
        self.mpp = float(mpp) if mpp else None
        self.level_dimensions = pyramid_dimensions(w, h) if pyramid else [(w, h)]
        self.level_count = len(self.level_dimensions)
        self.level_downsamples = [
            ((w / lw) + (h / lh)) / 2.0 if lw and lh else 1.0 for lw, lh in self.level_dimensions
        ]
        self.level_downsamples[0] = 1.0
        self._levels: list[np.ndarray | None] = [pixels] + [None] * (self.level_count - 1)
        self._build_lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pixels(self) -> np.ndarray:
        """The level-0 array itself (read-only use)."""
        return self.level_array(0)

    def level_array(self, level: int) -> np.ndarray:
        """The whole of ``level`` as an (h, w, 3) uint8 array (built on first use; shared, do
        not modify)."""
        level = self.check_level(level)
        levels = self._levels
        arr = levels[level]
        if arr is None:
            if self._closed:
                raise ImageReadError(self.path, "the image is closed")
            with self._build_lock:
                for k in range(1, level + 1):
                    finer = levels[k - 1]
                    if levels[k] is None and finer is not None:  # level 0 is always there
                        levels[k] = self._halve(finer, self.level_dimensions[k])
            arr = levels[level]
        if arr is None or self._closed:
            raise ImageReadError(self.path, "the image is closed")
        return arr

    @staticmethod
    def _halve(above: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        from PIL import Image

        out = np.asarray(Image.fromarray(above).reduce(2))
        assert (out.shape[1], out.shape[0]) == size, (out.shape, size)
        return out

    def read_region_shared(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        w, h = check_region(w, h)
        arr = self.level_array(level)
        x, y = int(x), int(y)
        ah, aw = arr.shape[:2]
        if x >= 0 and y >= 0 and x + w <= aw and y + h <= ah:
            return arr[y : y + h, x : x + w]
        out = white(h, w)
        cx0, cy0, cx1, cy1 = max(x, 0), max(y, 0), min(x + w, aw), min(y + h, ah)
        if cx0 < cx1 and cy0 < cy1:
            out[cy0 - y : cy1 - y, cx0 - x : cx1 - x] = arr[cy0:cy1, cx0:cx1]
        return out

    def read_region(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        region = self.read_region_shared(level, x, y, w, h)
        return region.copy() if region.base is not None else region

    def close(self) -> None:
        # Reads already holding a level array finish normally (the array stays alive with them).
        self._closed = True
        self._levels = [None] * self.level_count
