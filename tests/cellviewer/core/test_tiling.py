"""Tile maths without Qt: levels for a zoom, the grid, the tiles under a view, parents, sizes,
rendering a tile from a real slide, and the byte-bounded cache."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core.sources import open_image
from cellviewer.core.sources.tiling import (
    BYTES_PER_PIXEL,
    TILE_SIZE,
    ByteBoundedLRU,
    TileKey,
    grid_size,
    level_count,
    level_for_zoom,
    parent_key,
    render_tile,
    tile_bytes,
    tile_rect,
    tile_shape,
    tiles_covering,
)
from cellviewer.paths import demo_dir

SLIDE = demo_dir() / "slides" / "CMU-1-Small-Region.svs"  # 2220 x 2967, one level
W, H = 2220, 2967


def test_levels_cover_the_image_down_to_one_tile():
    n = level_count(W, H)
    assert n == 5  # 2967 px / 256 -> 11.6 -> 4 halvings to one tile, plus level 0
    assert grid_size(W, H, n - 1) == (1, 1)
    assert grid_size(W, H, n - 2) != (1, 1)
    assert grid_size(W, H, 0) == (9, 12)
    assert level_count(10, 10) == 1 and grid_size(10, 10, 0) == (1, 1)
    # drawn scale stays in (1/2, 1]: zoom 0.3 -> downsample 2**1 drawn at 0.6
    assert level_for_zoom(0.3, n) == 1
    assert level_for_zoom(0.5, n) == 1
    assert level_for_zoom(0.51, n) == 0
    assert level_for_zoom(0.25, n) == 2
    assert level_for_zoom(4.0, n) == 0
    assert level_for_zoom(1e-6, n) == n - 1


@pytest.mark.parametrize("zoom", [0.05, 0.2, 0.7])
def test_every_view_level_has_a_tile_for_the_whole_image(zoom):
    n = level_count(W, H)
    k = level_for_zoom(zoom, n)
    cols, rows = grid_size(W, H, k)
    span = TILE_SIZE << k
    assert cols * span >= W and rows * span >= H
    assert (cols - 1) * span < W and (rows - 1) * span < H  # and no tile beyond it


def test_tile_rects_sizes_and_bytes_clip_at_the_edge():
    assert tile_rect(TileKey(1, 0, 3, 5), W, H) == (768, 1280, 256, 256)
    assert tile_rect(TileKey(1, 0, 8, 11), W, H) == (2048, 2816, W - 2048, H - 2816)
    assert tile_rect(TileKey(1, 2, 2, 2), W, H) == (2048, 2048, W - 2048, H - 2048)
    assert tile_shape(TileKey(1, 2, 2, 2), W, H) == (230, 43)  # ceil(919/4), ceil(172/4)
    assert tile_shape(TileKey(1, 0, 0, 0), W, H) == (256, 256)
    assert tile_bytes(TileKey(1, 0, 0, 0), W, H) == 256 * 256 * BYTES_PER_PIXEL


@pytest.mark.parametrize(("zoom", "view"), [
    (1.0, (0, 0, 800, 600)), (0.37, (100, 40, 500, 333)), (2.5, (1234, 987, 640, 480)),
    (0.1, (0, 0, 222, 297)), (1.0, (2000, 2900, 1000, 1000))])
def test_tiles_covering_a_view_are_exactly_those_it_overlaps(zoom, view):
    x, y, w, h = view
    k = level_for_zoom(zoom, level_count(W, H))
    keys = tiles_covering(7, W, H, k, zoom, x, y, w, h)
    # Brute force: every tile of the level whose zoomed rectangle overlaps the view.
    cols, rows = grid_size(W, H, k)
    expect = set()
    for r in range(rows):
        for c in range(cols):
            tx, ty, tw, th = (v * zoom for v in tile_rect(TileKey(7, k, c, r), W, H))
            if tx < x + w and x < tx + tw and ty < y + h and y < ty + th:
                expect.add(TileKey(7, k, c, r))
    assert set(keys) == expect and len(keys) == len(expect)
    # The centre ones come first.
    cx = (min(t.col for t in keys) + max(t.col for t in keys)) / 2
    cy = (min(t.row for t in keys) + max(t.row for t in keys)) / 2
    dist = [(t.col - cx) ** 2 + (t.row - cy) ** 2 for t in keys]
    assert dist == sorted(dist)


def test_tiles_covering_nothing():
    assert tiles_covering(1, W, H, 0, 1.0, 0, 0, 0, 100) == []
    assert tiles_covering(1, W, H, 0, 1.0, 5000, 5000, 100, 100) == []


def test_parent_tiles_contain_their_children():
    child = TileKey(3, 0, 7, 10)
    for level in range(1, level_count(W, H)):
        parent = parent_key(child, level)
        px, py, pw, ph = tile_rect(parent, W, H)
        cx, cy, cw, ch = tile_rect(child, W, H)
        assert px <= cx and py <= cy and cx + cw <= px + pw and cy + ch <= py + ph
    assert parent_key(child, 0) == child
    with pytest.raises(ValueError):
        parent_key(TileKey(3, 2, 0, 0), 1)


def test_level0_tile_is_the_source_region_and_coarse_tile_its_average():
    with open_image(SLIDE) as src:
        tile = render_tile(src, TileKey(1, 0, 3, 5))
        expect = src.read_region(0, 3 * TILE_SIZE, 5 * TILE_SIZE, TILE_SIZE, TILE_SIZE)
        assert np.array_equal(tile, expect)
        # the edge tile is clipped to the image, not padded with white
        edge = render_tile(src, TileKey(1, 0, 8, 11))
        assert edge.shape == (H - 11 * TILE_SIZE, W - 8 * TILE_SIZE, 3)
        assert edge.shape[:2] == tile_shape(TileKey(1, 0, 8, 11), W, H)
        # level 2 (downsample 4) from a one-level slide: a 1024-px area shrunk to 256
        coarse = render_tile(src, TileKey(1, 2, 1, 1))
        assert coarse.shape == (256, 256, 3)
        area = src.read_region(0, 1024, 1024, 1024, 1024).astype(np.float64)
        box = area.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
        assert np.abs(coarse.astype(np.float64) - box).mean() < 6  # bilinear vs box: close


def test_byte_bounded_cache_keeps_the_most_recent_within_its_bound():
    cache: ByteBoundedLRU[str, bytes] = ByteBoundedLRU(30, len)
    for name in "abc":
        cache.put(name, b"x" * 10)
    assert cache.bytes_used == 30 and len(cache) == 3
    assert cache.get("a") == b"x" * 10  # touched: now the most recent
    assert cache.peek("b") is not None  # peeked: still the least recent
    cache.put("d", b"y" * 10)
    assert "b" not in cache and all(k in cache for k in "acd")
    cache.put("c", b"z" * 5)  # a replacement counts its new size only
    assert cache.bytes_used == 25 and cache.get("c") == b"z" * 5
    cache.put("big", b"w" * 100)  # over the bound alone: the newest item stays
    assert len(cache) == 1 and "big" in cache and cache.bytes_used == 100
    assert cache.get("missing") is None
    cache.put("e", b"v")
    cache.drop_where(lambda key: key == "big")
    assert len(cache) == 1 and cache.bytes_used == 1
    cache.clear()
    assert len(cache) == 0 and cache.bytes_used == 0
