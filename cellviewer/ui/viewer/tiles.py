"""Tiles of an image at any zoom for the viewer: QImages read in worker threads, kept in a cache
bounded in bytes.

The tile maths (view levels, the grid, keys, which tiles cover the view, rendering a tile from a
source) is Qt-free and lives in :mod:`cellviewer.core.sources.tiling`; its names are re-exported
here
for the viewer's modules.

:class:`SourceHandle` makes one open ``ImageSource`` safe to share between the GUI thread and the
workers: the sources read in parallel and their ``close`` waits for reads in flight, so a worker
never reads a freed file, and a read that loses the race reports "closed", not an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from cellviewer.core.sources.tiling import (
    TILE_SIZE,
    ByteBoundedLRU,
    TileKey,
    grid_size,
    level_count,
    level_for_zoom,
    parent_key,
    render_tile,
    tile_rect,
    tiles_covering,
)
from cellviewer.ui.common.workers import BackgroundRunner

__all__ = [
    "TILE_SIZE",
    "SourceClosedError",
    "SourceHandle",
    "TileCache",
    "TileKey",
    "TileLoader",
    "array_to_qimage",
    "grid_size",
    "level_count",
    "level_for_zoom",
    "parent_key",
    "render_tile",
    "tile_rect",
    "tiles_covering",
]

T = TypeVar("T")


class SourceClosedError(RuntimeError):
    pass


class SourceHandle:
    """One open image source, shared by the GUI thread and the tile/patch workers.

    The core's sources are thread-safe (``read_region`` runs in parallel; ``close`` waits for
    reads in flight), so the handle only adds an id for tile keys, cached geometry, and a closed
    flag that lets a worker whose image was switched away stop quietly.
    """

    _ids = itertools.count(1)

    def __init__(self, source: Any) -> None:
        self.id = next(SourceHandle._ids)
        self.source = source
        self.path = source.path
        self.width, self.height = (int(v) for v in source.dimensions)
        self.mpp = source.mpp
        self.level_downsamples = [float(d) for d in source.level_downsamples]
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise SourceClosedError(f"{self.path}: already closed")

    def read_region(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        self._check()
        try:
            return self.source.read_region(level, x, y, w, h)
        except Exception:
            self._check()  # closed under us: say so, not "cannot read"
            raise

    def best_level_for_downsample(self, downsample: float) -> int:
        return int(self.source.best_level_for_downsample(downsample))

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(source, ...)`` in a worker (e.g. cropping patches), closed-aware."""
        self._check()
        try:
            return fn(self.source, *args, **kwargs)
        except Exception:
            self._check()
            raise

    def mark_closed(self) -> None:
        """From now on reads fail as "closed" (cheap: the GUI thread calls it, then closes the
        source in a worker)."""
        self._closed = True

    def close(self) -> None:
        """Close the source (waits for reads in flight: call it from a worker)."""
        self._closed = True
        self.source.close()


def array_to_qimage(rgb: np.ndarray) -> QImage:
    """(h, w, 3) uint8 -> an independent QImage in the format the raster engine blits fastest."""
    rgb = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return img.convertToFormat(QImage.Format.Format_RGB32)  # a copy: rgb may go away


class TileCache(ByteBoundedLRU[TileKey, QImage]):
    """Least-recently-used QImages, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        super().__init__(max_bytes, QImage.sizeInBytes)

    def drop_source(self, source_id: int) -> None:
        """Forget every tile of one image (it was closed or switched away)."""
        self.drop_where(lambda key: key.source == source_id)


class TileLoader(QObject):
    """Fetches tiles in worker threads into a :class:`TileCache`; never blocks the caller.

    ``request`` is idempotent (a tile cached or on its way is not fetched again); ``retain``
    cancels queued fetches that the view no longer needs. ``tileLoaded`` fires on the GUI thread.
    """

    tileLoaded = Signal(object)  # TileKey
    tileFailed = Signal(object, str)

    def __init__(
        self, cache: TileCache | None = None, threads: int = 3, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.cache = cache or TileCache()
        self.runner = BackgroundRunner(threads, self)
        self._pending: dict[TileKey, int] = {}
        self.failed: dict[TileKey, str] = {}

    def is_pending(self, key: TileKey) -> bool:
        return key in self._pending

    def pending_count(self) -> int:
        return len(self._pending)

    def request(self, handle: SourceHandle, key: TileKey, priority: int = 0) -> None:
        if key in self._pending or key in self.cache or key in self.failed:
            return

        def job() -> QImage:
            return array_to_qimage(render_tile(handle, key))

        self._pending[key] = self.runner.submit(
            job,
            lambda img: self._done(key, img),
            lambda msg: self._failed(key, msg, handle.closed),
            priority,
        )

    def retain(self, keep: set[TileKey]) -> None:
        """Cancel the queued fetches that are not in ``keep``."""
        for key in [k for k in self._pending if k not in keep]:
            if self.runner.cancel(self._pending[key]):
                del self._pending[key]

    def forget_source(self, source_id: int) -> None:
        self.retain({k for k in self._pending if k.source != source_id})
        self.cache.drop_source(source_id)
        self.failed = {k: v for k, v in self.failed.items() if k.source != source_id}

    def _done(self, key: TileKey, img: QImage) -> None:
        self._pending.pop(key, None)
        self.cache.put(key, img)
        self.tileLoaded.emit(key)

    def _failed(self, key: TileKey, message: str, closed: bool = False) -> None:
        self._pending.pop(key, None)
        if closed:
            return  # the image was switched while this tile was being read: not an error
        self.failed[key] = message
        self.tileFailed.emit(key, message)
