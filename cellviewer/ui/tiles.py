"""Tiles of an image at any zoom: addressed by integer (level, col, row), read in worker threads,
kept in a cache bounded in bytes.

The view's pyramid is its own, independent of the file's: view level ``k`` has downsample
``2**k`` and is cut into ``TILE_SIZE`` squares. A worker renders tile ``(k, col, row)`` by reading
the source's best level for that downsample and resizing the read to the tile (so a slide with
only a level 0, or a plain image, still gets cheap coarse tiles, and the screen never has to
scale a tile by less than 1/2). Coordinates in the key are integers so keys hash exactly and a
tile is never fetched twice.

:class:`SourceHandle` makes one open ``ImageSource`` safe to share between the GUI thread and the
workers: the sources read in parallel and their ``close`` waits for reads in flight, so a worker
never reads a freed file, and a read that loses the race reports "closed", not an error.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from cellviewer.ui.workers import BackgroundRunner

TILE_SIZE = 256


class TileKey(NamedTuple):
    source: int  # SourceHandle.id: tiles of different images (or reopenings) never mix
    level: int  # view level: downsample 2**level
    col: int
    row: int


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

    def call(self, fn, *args, **kwargs):
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


def level_count(width: int, height: int, tile: int = TILE_SIZE) -> int:
    """Number of view levels: the last one holds the whole image in a single tile."""
    longest = max(1, width, height)
    return max(1, math.ceil(math.log2(max(1.0, longest / tile))) + 1)


def grid_size(width: int, height: int, level: int, tile: int = TILE_SIZE) -> tuple[int, int]:
    span = tile * (1 << level)
    return max(1, math.ceil(width / span)), max(1, math.ceil(height / span))


def level_for_zoom(zoom: float, n_levels: int) -> int:
    """The view level whose tiles are drawn at a scale in (1/2, 1] (or magnified at level 0)."""
    if zoom >= 1.0:
        return 0
    return min(n_levels - 1, max(0, int(math.floor(math.log2(1.0 / zoom) + 1e-9))))


def tile_rect(key: TileKey, width: int, height: int, tile: int = TILE_SIZE):
    """The level-0 rectangle (x, y, w, h) a tile covers, clipped to the image."""
    span = tile * (1 << key.level)
    x0, y0 = key.col * span, key.row * span
    return x0, y0, max(0, min(span, width - x0)), max(0, min(span, height - y0))


def render_tile(handle: SourceHandle, key: TileKey, tile: int = TILE_SIZE) -> np.ndarray:
    """Read one view tile as an (h, w, 3) uint8 array (runs in a worker)."""
    ds = 1 << key.level
    x0, y0, w0, h0 = tile_rect(key, handle.width, handle.height, tile)
    out_w, out_h = max(1, math.ceil(w0 / ds)), max(1, math.ceil(h0 / ds))
    lvl = handle.best_level_for_downsample(ds)
    d = float(handle.level_downsamples[lvl])
    lx, ly = int(x0 / d), int(y0 / d)
    lw, lh = max(1, math.ceil(w0 / d)), max(1, math.ceil(h0 / d))
    region = np.asarray(handle.read_region(lvl, lx, ly, lw, lh))
    if region.ndim == 2:
        region = np.repeat(region[:, :, None], 3, axis=2)
    region = region[:, :, :3]
    if region.shape[1] != out_w or region.shape[0] != out_h:
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(region))
        region = np.asarray(
            img.resize((out_w, out_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        )
    return region


def array_to_qimage(rgb: np.ndarray) -> QImage:
    """(h, w, 3) uint8 -> an independent QImage in the format the raster engine blits fastest."""
    rgb = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return img.convertToFormat(QImage.Format.Format_RGB32)  # a copy: rgb may go away


class TileCache:
    """Least-recently-used QImages, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[TileKey, QImage] = OrderedDict()
        self.bytes_used = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: TileKey) -> bool:
        return key in self._items

    def get(self, key: TileKey) -> QImage | None:
        img = self._items.get(key)
        if img is not None:
            self._items.move_to_end(key)
        return img

    def peek(self, key: TileKey) -> QImage | None:
        """Like get() without refreshing: for fallbacks that should not keep tiles alive."""
        return self._items.get(key)

    def put(self, key: TileKey, img: QImage) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes_used -= old.sizeInBytes()
        self._items[key] = img
        self.bytes_used += img.sizeInBytes()
        while self.bytes_used > self.max_bytes and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self.bytes_used -= evicted.sizeInBytes()

    def drop_source(self, source_id: int) -> None:
        for key in [k for k in self._items if k.source == source_id]:
            self.bytes_used -= self._items.pop(key).sizeInBytes()

    def clear(self) -> None:
        self._items.clear()
        self.bytes_used = 0


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
            lambda img, k=key: self._done(k, img),
            lambda msg, k=key: self._failed(k, msg, handle.closed),
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
