"""Tile maths for viewing an image at any zoom, without Qt: levels, the grid, keys, rendering,
and a cache bounded in bytes.

The view's pyramid is its own, independent of the file's: view level ``k`` has downsample
``2**k`` and is cut into ``TILE_SIZE`` squares; the last level holds the whole image in one tile.
A tile is addressed by integer ``(source, level, col, row)`` so keys hash exactly and a tile is
never fetched twice. :func:`render_tile` reads the source's best level for the downsample and
resizes the read to the tile, so a slide with only a level 0, or a plain image, still gets cheap
coarse tiles, and the screen never has to scale a tile by less than 1/2.

The viewer (``cellviewer.ui.viewer.tiles``, ``cellviewer.ui.viewer.slide_view``) adds the Qt parts:
QImages,
worker threads, painting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar

import numpy as np

TILE_SIZE = 256
BYTES_PER_PIXEL = 4  # tiles are kept as 32-bit pixels (the format the raster engine blits)


class TileKey(NamedTuple):
    source: int  # the id of the opened image: tiles of different images (or reopenings) never mix
    level: int  # view level: downsample 2**level
    col: int
    row: int


class TileSource(Protocol):
    """What :func:`render_tile` reads from: an open image's geometry and pixels."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def level_downsamples(self) -> Sequence[float]: ...

    def best_level_for_downsample(self, downsample: float) -> int: ...

    def read_region(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray: ...


def level_count(width: int, height: int, tile: int = TILE_SIZE) -> int:
    """Number of view levels: the last one holds the whole image in a single tile."""
    longest = max(1, width, height)
    return max(1, math.ceil(math.log2(max(1.0, longest / tile))) + 1)


def grid_size(width: int, height: int, level: int, tile: int = TILE_SIZE) -> tuple[int, int]:
    """(columns, rows) of the tiles of ``level``."""
    span = tile * (1 << level)
    return max(1, math.ceil(width / span)), max(1, math.ceil(height / span))


def level_for_zoom(zoom: float, n_levels: int) -> int:
    """The view level whose tiles are drawn at a scale in (1/2, 1] (or magnified at level 0)."""
    if zoom >= 1.0:
        return 0
    return min(n_levels - 1, max(0, int(math.floor(math.log2(1.0 / zoom) + 1e-9))))


def tile_rect(key: TileKey, width: int, height: int,
              tile: int = TILE_SIZE) -> tuple[int, int, int, int]:
    """The level-0 rectangle (x, y, w, h) a tile covers, clipped to the image."""
    span = tile * (1 << key.level)
    x0, y0 = key.col * span, key.row * span
    return x0, y0, max(0, min(span, width - x0)), max(0, min(span, height - y0))


def tile_shape(key: TileKey, width: int, height: int, tile: int = TILE_SIZE) -> tuple[int, int]:
    """(height, width) in pixels of the rendered tile (edge tiles are clipped, not padded)."""
    ds = 1 << key.level
    _, _, w0, h0 = tile_rect(key, width, height, tile)
    return max(1, math.ceil(h0 / ds)), max(1, math.ceil(w0 / ds))


def tile_bytes(key: TileKey, width: int, height: int, tile: int = TILE_SIZE) -> int:
    """The memory a rendered tile takes at :data:`BYTES_PER_PIXEL`."""
    h, w = tile_shape(key, width, height, tile)
    return h * w * BYTES_PER_PIXEL


def tiles_covering(source: int, width: int, height: int, level: int, zoom: float,
                   x: float, y: float, w: float, h: float,
                   tile: int = TILE_SIZE) -> list[TileKey]:
    """The level-``level`` tiles under the rectangle (x, y, w, h) of the image drawn at
    ``zoom`` (screen pixels of the zoomed image), the centre ones first (they are fetched
    first). Empty when the rectangle misses the image."""
    if w <= 0 or h <= 0:
        return []
    span = tile << level
    cols, rows = grid_size(width, height, level, tile)
    c0 = max(0, int(x / zoom // span))
    c1 = min(cols - 1, int(((x + w) / zoom - 1e-9) // span))
    r0 = max(0, int(y / zoom // span))
    r1 = min(rows - 1, int(((y + h) / zoom - 1e-9) // span))
    cx, cy = (c0 + c1) / 2, (r0 + r1) / 2
    keys = [TileKey(source, level, c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
    return sorted(keys, key=lambda t: (t.col - cx) ** 2 + (t.row - cy) ** 2)


def parent_key(key: TileKey, level: int) -> TileKey:
    """The tile of the coarser ``level`` that contains ``key``'s area (a stand-in to draw
    while ``key`` is on its way)."""
    if level < key.level:
        raise ValueError(f"level {level} is finer than the tile's level {key.level}")
    shift = level - key.level
    return TileKey(key.source, level, key.col >> shift, key.row >> shift)


def render_tile(source: TileSource, key: TileKey, tile: int = TILE_SIZE) -> np.ndarray:
    """Read one view tile as an (h, w, 3) uint8 array (runs in a worker)."""
    ds = 1 << key.level
    x0, y0, w0, h0 = tile_rect(key, source.width, source.height, tile)
    out_h, out_w = tile_shape(key, source.width, source.height, tile)
    lvl = source.best_level_for_downsample(ds)
    d = float(source.level_downsamples[lvl])
    lx, ly = int(x0 / d), int(y0 / d)
    lw, lh = max(1, math.ceil(w0 / d)), max(1, math.ceil(h0 / d))
    region = np.asarray(source.read_region(lvl, lx, ly, lw, lh))
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


K = TypeVar("K")
V = TypeVar("V")


class ByteBoundedLRU(Generic[K, V]):
    """Least-recently-used items, bounded by their total size in bytes (``size_of(item)``).

    The newest item always stays, even when it alone is over the bound (a view must be able to
    show at least the tile it just loaded)."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = int(max_bytes)
        self._size_of = size_of
        self._items: OrderedDict[K, V] = OrderedDict()
        self.bytes_used = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def peek(self, key: K) -> V | None:
        """Like get() without refreshing: for fallbacks that should not keep items alive."""
        return self._items.get(key)

    def put(self, key: K, item: V) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes_used -= self._size_of(old)
        self._items[key] = item
        self.bytes_used += self._size_of(item)
        while self.bytes_used > self.max_bytes and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self.bytes_used -= self._size_of(evicted)

    def drop_where(self, condition: Callable[[K], bool]) -> None:
        """Remove every item whose key meets ``condition``."""
        for key in [k for k in self._items if condition(k)]:
            self.bytes_used -= self._size_of(self._items.pop(key))

    def clear(self) -> None:
        self._items.clear()
        self.bytes_used = 0
