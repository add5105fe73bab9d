"""The one interface the viewer and the cropper read images through, and its error classes.

Coordinates: ``read_region(level, x, y, w, h)`` takes x, y in *that level's* pixels (not level 0's,
unlike OpenSlide's own API) and returns an (h, w, 3) uint8 RGB array; pixels outside the image are
white, so a viewer can ask for a tile that overhangs the edge without special cases.

Errors: every failure to open an image is an :class:`ImageOpenError` whose message names the file
and the cause. A read that fails *after* a successful open (a damaged tile deep inside a slide that
the open-time probe did not touch) is an :class:`ImageReadError`, a subclass, so code that only
wants "this image is unusable" catches ``ImageOpenError`` alone.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

# A level is chosen when its downsample exceeds the requested one by at most this fraction:
# real pyramids have downsamples like 4.0020 for a nominal 4, and a viewer asking for 4 wants
# that level, not the 2x one (OpenSlide's own rule would pick the 2x level).
LEVEL_TOLERANCE = 0.01


class ImageOpenError(Exception):
    """An image cannot be opened (or read): the message names the file and the cause."""

    def __init__(self, path: str | os.PathLike | None, cause: str, *, message: str = ""):
        self.path = Path(path) if path is not None else None
        self.cause = cause
        super().__init__(message or f"Cannot open image {self.path}: {cause}")


class ImageReadError(ImageOpenError):
    """A region of an opened image cannot be read (damaged data the open-time probe missed).

    OpenSlide puts a handle into a permanent error state after such a failure, so every later
    read of the same source raises this too; the image must be reopened (and will fail again).
    """

    def __init__(self, path: str | os.PathLike | None, cause: str, region: str = ""):
        self.region = region
        where = f" {region} of" if region else ""
        super().__init__(path, cause, message=f"Cannot read{where} image {path}: {cause}")


def white(h: int, w: int) -> np.ndarray:
    """An (h, w, 3) uint8 white canvas: what lies outside every image."""
    return np.full((h, w, 3), 255, dtype=np.uint8)


def check_region(w: int, h: int) -> tuple[int, int]:
    w, h = int(w), int(h)
    if w < 0 or h < 0:
        raise ValueError(f"region size must be non-negative, got {w}x{h}")
    return w, h


class ImageSource(ABC):
    """An opened image: a whole-slide image through OpenSlide or a plain image in memory.

    Attributes every source sets: ``path``, ``format`` (e.g. ``"aperio"``, ``"png"``),
    ``level_count``, ``level_dimensions`` ((width, height) per level, level 0 first),
    ``level_downsamples`` (level-0 pixels per level pixel) and ``mpp`` (microns per level-0
    pixel, or None when the file does not say).

    Thread safety: ``read_region`` and ``thumbnail`` may be called from several threads at once.
    ``close`` waits for reads in flight; reads after it raise :class:`ImageReadError`.
    """

    path: Path
    format: str
    level_count: int
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    mpp: float | None

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0."""
        return self.level_dimensions[0]

    @property
    def width(self) -> int:
        return self.level_dimensions[0][0]

    @property
    def height(self) -> int:
        return self.level_dimensions[0][1]

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    @abstractmethod
    def read_region(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """(h, w, 3) uint8 RGB of the region at (x, y) in ``level``'s pixels; white outside."""

    def read_region_shared(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Like :meth:`read_region`, but may return a read-only view into the source's own
        memory instead of a copy (array-backed sources do; the cropper uses it to avoid copies).
        Never write into the result."""
        return self.read_region(level, x, y, w, h)

    @abstractmethod
    def close(self) -> None: ...

    def check_level(self, level: int) -> int:
        level = int(level)
        if not 0 <= level < self.level_count:
            raise ValueError(
                f"{self.path}: level {level} does not exist (the image has {self.level_count})"
            )
        return level

    def best_level_for_downsample(self, downsample: float) -> int:
        """The smallest-resolution level whose downsample is not above ``downsample`` (within
        :data:`LEVEL_TOLERANCE`), so drawing it at ``downsample`` never upsamples visibly."""
        limit = float(downsample) * (1.0 + LEVEL_TOLERANCE)
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= limit:
                best = i
        return best

    def thumbnail(self, max_size: int) -> np.ndarray:
        """The whole image as (h, w, 3) uint8 with its longer side at most ``max_size`` (never
        enlarged), read from the best level and resized with antialiasing."""
        from PIL import Image

        if max_size < 1:
            raise ValueError(f"max_size must be positive, got {max_size}")
        w0, h0 = self.dimensions
        downsample = max(w0, h0) / max_size
        level = self.best_level_for_downsample(max(downsample, 1.0))
        lw, lh = self.level_dimensions[level]
        pixels = self.read_region(level, 0, 0, lw, lh)
        if downsample <= 1.0:
            return pixels
        size = (max(1, round(w0 / downsample)), max(1, round(h0 / downsample)))
        if size == (lw, lh):
            return pixels
        img = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(img)

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        return (
            f"<{type(self).__name__} {self.path} {self.format} {w}x{h} "
            f"levels={self.level_count} mpp={self.mpp}>"
        )
