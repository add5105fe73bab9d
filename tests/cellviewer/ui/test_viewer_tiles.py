"""The viewer's tiles: rendering through a SourceHandle, the QImage cache bounded in bytes,
background loads. (The Qt-free tile maths is tested in tests/cellviewer/core/test_tiling.py.)"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from cellviewer.core.sources import open_image
from cellviewer.paths import demo_dir
from cellviewer.ui.viewer.tiles import (
    TILE_SIZE,
    SourceHandle,
    TileCache,
    TileKey,
    TileLoader,
    array_to_qimage,
    grid_size,
    level_count,
    level_for_zoom,
    render_tile,
    tiles_covering,
)

SLIDE = demo_dir() / "slides" / "CMU-1-Small-Region.svs"  # 2220 x 2967, one level


def test_cache_is_bounded_in_bytes_and_least_recently_used():
    one = array_to_qimage(np.zeros((100, 100, 3), np.uint8))
    size = one.sizeInBytes()
    cache = TileCache(max_bytes=3 * size)
    for i in range(3):
        cache.put(TileKey(1, 0, i, 0), array_to_qimage(np.zeros((100, 100, 3), np.uint8)))
    assert cache.get(TileKey(1, 0, 0, 0)) is not None  # touch: now the most recent
    cache.put(TileKey(1, 0, 3, 0), one)
    assert cache.bytes_used <= 3 * size
    assert TileKey(1, 0, 1, 0) not in cache  # the least recently used went
    assert TileKey(1, 0, 0, 0) in cache
    cache.drop_source(1)
    assert len(cache) == 0 and cache.bytes_used == 0


def test_array_to_qimage_keeps_colours():
    a = np.zeros((2, 3, 3), np.uint8)
    a[1, 2] = (10, 200, 30)
    img = array_to_qimage(a)
    assert img.format() == QImage.Format.Format_RGB32
    c = img.pixelColor(2, 1)
    assert (c.red(), c.green(), c.blue()) == (10, 200, 30)


def test_loader_reads_in_the_background_once(qtbot):
    loader = TileLoader(TileCache(), threads=2)
    with open_image(SLIDE) as src:
        h = SourceHandle(src)
        keys = [TileKey(h.id, 0, c, 0) for c in range(4)]
        with qtbot.waitSignals([loader.tileLoaded] * 4, timeout=10000):
            for k in keys:
                loader.request(h, k)
                loader.request(h, k)  # a second request is not a second read
        assert all(k in loader.cache for k in keys)
        assert loader.pending_count() == 0
        loader.runner.wait()


def test_loader_reports_a_failed_read(qtbot):
    loader = TileLoader(TileCache(), threads=1)
    src = open_image(SLIDE)
    h = SourceHandle(src)
    bad = TileKey(h.id, 0, 0, 0)
    h.source.close()  # the file is gone under the handle: the read fails in the worker
    with qtbot.waitSignal(loader.tileFailed, timeout=10000) as blocker:
        loader.request(h, bad)
    assert blocker.args[0] == bad and "closed" in blocker.args[1]
    assert bad in loader.failed
    loader.request(h, bad)  # not retried forever
    assert loader.pending_count() == 0


def test_tiles_render_through_a_handle_and_cover_the_view():
    with open_image(SLIDE) as src:
        h = SourceHandle(src)
        key = TileKey(h.id, 0, 3, 5)
        expect = src.read_region(0, 3 * TILE_SIZE, 5 * TILE_SIZE, TILE_SIZE, TILE_SIZE)
        assert np.array_equal(render_tile(h, key), expect)
    n = level_count(2220, 2967)
    assert grid_size(2220, 2967, n - 1) == (1, 1) and level_for_zoom(0.3, n) == 1
    keys = tiles_covering(h.id, h.width, h.height, 0, 1.0, 0, 0, 300, 300)
    assert sorted(keys) == [TileKey(h.id, 0, c, r) for c in (0, 1) for r in (0, 1)]
