"""The spatial index of an image's cells answers like a brute-force scan (no Qt)."""

from __future__ import annotations

import numpy as np

from cellviewer.core.cells.spatial import GridIndex


def test_grid_query_matches_brute_force():
    rng = np.random.default_rng(1)
    xy = rng.random((20000, 2)) * (8000, 6000)
    index = GridIndex(xy, 8000, 6000)
    for _ in range(50):
        x0, y0 = rng.random(2) * (8000, 6000)
        x1, y1 = x0 + rng.random() * 3000, y0 + rng.random() * 2000
        got = np.sort(index.query(x0, y0, x1, y1))
        inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        assert np.array_equal(got, np.flatnonzero(inside))
    assert len(index.query(-10, -10, 9000, 7000)) == 20000
    assert len(index.query(100, 100, 50, 50)) == 0


def test_nearest_respects_radius_and_mask():
    xy = np.array([[10.0, 10.0], [20.0, 10.0], [100.0, 100.0]])
    index = GridIndex(xy, 200, 200)
    assert index.nearest(12, 10, 5) == 0
    assert index.nearest(17, 10, 5) == 1
    assert index.nearest(60, 60, 5) == -1
    assert index.nearest(12, 10, 5, mask=np.array([False, True, True])) == -1
    assert index.nearest(12, 10, 9, mask=np.array([False, True, True])) == 1


def test_points_outside_the_declared_image_are_still_found():
    index = GridIndex(np.array([[5000.0, 5.0]]), 100, 100)
    assert list(index.query(4990, 0, 5010, 10)) == [0]
