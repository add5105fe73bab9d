"""Moving a region's corner in the core: one undoable action recorded with who and when, holes
kept, a self-crossing result repaired or refused with a message (nothing changed), cells and
their statuses untouched (the message says what a marked region now takes in)."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon

from cellviewer.core.regions import editing
from cellviewer.core.regions.editing import RegionEditError
from cellviewer.core.regions.geometry import RegionGeometryError, from_geojson
from cellviewer.core.store import ProjectStore


@pytest.fixture
def store(tmp_path):
    s = ProjectStore.create(tmp_path / "v.cvproj")
    s.user = "ana"
    yield s
    s.close()


def _ring(store, uuid) -> np.ndarray:
    return np.asarray(store.region(uuid).geometry["coordinates"][0])[:-1]


def _corner(store, uuid, x, y) -> int:
    ring = _ring(store, uuid)
    return int(np.argmin(np.hypot(ring[:, 0] - x, ring[:, 1] - y)))


def test_moving_a_corner_is_one_undoable_action_with_who_and_when(store):
    image = store.add_image("a.png", 1000, 1000)
    uuid = editing.add_rectangle(store, image, 0, 0, 100, 100, "box").uuid
    store.user = "bo"
    result = editing.move_vertex(store, uuid, _corner(store, uuid, 100, 100), 150, 120)
    assert "outline" in result.message
    poly = from_geojson(store.region(uuid).geometry)
    assert poly.area == pytest.approx(100 * 100 + 0.5 * 100 * 50 + 0.5 * 100 * 20)
    assert sorted(map(tuple, _ring(store, uuid).tolist())) == \
        [(0.0, 0.0), (0.0, 100.0), (100.0, 0.0), (150.0, 120.0)]
    op = store.operations(1)[0]
    assert (op.action, op.user) == ("region-edit", "bo")
    assert op.description == "Move a corner of region 'box'"
    entry = store.region_history(uuid)[-1]
    assert entry.user == "bo" and entry.at and entry.action == "region-edit"
    assert from_geojson(entry.old["geometry"]).area == 100 * 100
    assert store.undo()  # one step
    assert from_geojson(store.region(uuid).geometry).area == 100 * 100
    assert store.redo()
    assert from_geojson(store.region(uuid).geometry).area == pytest.approx(12_500 + 1000)


def test_a_crossing_result_is_refused_and_a_repairable_one_repaired(store):
    image = store.add_image("a.png", 1000, 1000)
    uuid = editing.add_rectangle(store, image, 0, 0, 100, 100, "box").uuid
    before = store.region(uuid).geometry
    n_ops = len(store.operations(None))
    # a rectangle's corner dragged past the opposite side: a bow tie, two pieces: refused
    with pytest.raises(RegionGeometryError, match="crosses itself"):
        editing.move_vertex(store, uuid, _corner(store, uuid, 100, 100), -50, 50)
    assert store.region(uuid).geometry == before and len(store.operations(None)) == n_ops
    # a corner dragged onto the line between its neighbours' neighbours: a spike that the
    # repair folds back into one polygon
    pent = editing.add_polygon(store, image, [[0, 0], [200, 0], [200, 200], [100, 300],
                                              [0, 200]], "house").uuid
    editing.move_vertex(store, pent, _corner(store, pent, 100, 300), 100, 200)
    poly = from_geojson(store.region(pent).geometry)
    assert poly.is_valid and poly.area == pytest.approx(200 * 200)
    with pytest.raises(RegionEditError, match="no corner 9"):
        editing.move_vertex(store, uuid, 9, 1, 1)
    with pytest.raises(RegionGeometryError, match="finite"):
        editing.move_vertex(store, uuid, 0, float("nan"), 1)


def test_holes_are_kept_and_cells_and_statuses_untouched(store):
    image = store.add_image("a.png", 1000, 1000)
    outer = [(0, 0), (300, 0), (300, 300), (0, 300)]
    hole = [(100, 100), (200, 100), (200, 200), (100, 200)]
    geom = {"type": "Polygon", "coordinates": [[list(p) for p in outer + outer[:1]],
                                               [list(p) for p in hole + hole[:1]]]}
    uuid = store.add_region(image, geom, "ring", "tissue")
    ids = store.add_cells(image, [[50, 50], [400, 50], [150, 150]], None, source="manual")
    editing.set_status(store, uuid, "annotated")
    statuses = [store.cell(c).review_status for c in ids]
    assert statuses == ["annotated", "unreviewed", "unreviewed"]  # outside, in the hole
    xy = store.cell_arrays(image).xy.copy()
    result = editing.move_vertex(store, uuid, _corner(store, uuid, 300, 0), 500, 0)
    poly = from_geojson(store.region(uuid).geometry)
    assert len(poly.interiors) == 1 and Polygon(hole).equals(Polygon(poly.interiors[0]))
    assert [store.cell(c).review_status for c in ids] == statuses  # not changed
    assert (store.cell_arrays(image).xy == xy).all()
    assert store.region(uuid).status == "annotated"
    # the cell at (400, 50) is now inside a region marked annotated: the message says so
    assert "1 cell below annotated" in result.message and "again" in result.message
    # the same place again: nothing to do, no action
    n_ops = len(store.operations(None))
    same = editing.move_vertex(store, uuid, _corner(store, uuid, 500, 0), 500, 0)
    assert "unchanged" in same.message and len(store.operations(None)) == n_ops
