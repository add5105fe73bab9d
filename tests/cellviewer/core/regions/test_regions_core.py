"""Regions in the core: geometry (repair or refusal), which cells are inside, per-region counts,
proportions and density, and a region's status raising its cells' as one undoable action."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from cellviewer.core.regions import editing, geometry, summary
from cellviewer.core.regions.editing import RegionEditError
from cellviewer.core.regions.geometry import RegionGeometryError
from cellviewer.core.regions.proposals import add_detections
from cellviewer.core.store import ProjectStore


@pytest.fixture
def store(tmp_path):
    s = ProjectStore.create(tmp_path / "r.cvproj")
    s.user = "ana"
    yield s
    s.close()


# --- geometry ----------------------------------------------------------------------------
def test_rectangles_and_polygons_and_their_geojson():
    rect = geometry.rectangle(50, 40, 10, 20)  # corners in any order
    assert rect.bounds == (10.0, 20.0, 50.0, 40.0) and rect.area == 800
    tri = geometry.polygon_from_points([[0, 0], [10, 0], [0, 10], [0, 0]])  # closed or not
    assert tri.area == 50
    back = geometry.from_geojson(geometry.to_geojson(tri))
    assert back.equals(tri)
    with pytest.raises(RegionGeometryError, match="at least 3 corners"):
        geometry.polygon_from_points([[0, 0], [5, 5]])
    with pytest.raises(RegionGeometryError, match="width and a height"):
        geometry.rectangle(5, 5, 5, 50)


def test_a_self_crossing_outline_is_repaired_when_one_piece_else_refused():
    spike = [[0, 0], [10, 0], [10, 10], [5, 10], [5, 14], [5, 10], [0, 10]]
    assert not Polygon(spike).is_valid
    fixed = geometry.polygon_from_points(spike)
    assert fixed.is_valid and fixed.area == 100
    with pytest.raises(RegionGeometryError, match="crosses itself.*2 separate pieces"):
        geometry.polygon_from_points([[0, 0], [10, 10], [10, 0], [0, 10]])  # a bow tie


def test_inside_matches_shapely_point_by_point_and_counts_the_boundary():
    rng = np.random.default_rng(3)
    poly = geometry.polygon_from_points([[10, 10], [90, 20], [70, 80], [40, 50], [15, 70]])
    xy = rng.uniform(0, 100, (2000, 2))
    expected = np.array([poly.intersects(shapely.Point(x, y)) for x, y in xy])
    mask = geometry.inside(poly, xy)
    assert mask.sum() > 200 and (mask == expected).all()
    rect = geometry.rectangle(0, 0, 50, 50)
    on_edge = np.array([[0, 25], [50, 50], [50.001, 10], [25, 25]])
    assert geometry.inside(rect, on_edge).tolist() == [True, True, False, True]
    assert geometry.inside(rect, np.empty((0, 2))).tolist() == []


# --- summaries ---------------------------------------------------------------------------
def _image_with_cells(store, mpp=0.5):
    tumour, immune = store.add_class("tumour"), store.add_class("immune")
    image = store.add_image("a.png", 1000, 1000, mpp=mpp)
    xy = [[10, 10], [20, 20], [30, 30], [40, 40], [500, 500], [60, 60]]
    ids = store.add_cells(image, xy, [tumour, tumour, tumour, immune, immune, None])
    return image, ids, tumour, immune


def test_counts_proportions_and_density_of_a_region(store):
    image, ids, tumour, immune = _image_with_cells(store, mpp=0.5)
    region = editing.add_rectangle(store, image, 0, 0, 100, 100).uuid
    add_detections(store, image, [[80, 80]], [0.9], method="test")  # a proposal inside
    s = summary.summarise(store, region)
    assert (s.n_cells, s.n_proposed, s.n_unlabelled) == (5, 1, 1)
    assert s.counts == {tumour: 3, immune: 1}
    assert s.proportions == {tumour: 0.75, immune: 0.25}
    assert s.area_mm2 == pytest.approx(100 * 100 * 0.25e-6)  # (100 px * 0.5 µm)²
    assert s.density_per_mm2 == pytest.approx(5 / 0.0025)
    assert s.class_names == {tumour: "tumour", immune: "immune"}


def test_a_region_without_cells_and_an_image_without_a_pixel_size(store):
    image, ids, *_ = _image_with_cells(store, mpp=None)
    empty = editing.add_rectangle(store, image, 700, 700, 900, 900).uuid
    s = summary.summarise(store, empty)
    assert (s.n_cells, s.counts, s.proportions) == (0, {}, {})
    assert s.density_per_mm2 is None and "no pixel size" in s.density_note
    before = store.cell_arrays(image)
    assert editing.set_status(store, empty, "annotated").count == 0
    assert store.region(empty).status == "annotated"
    after = store.cell_arrays(image)
    assert (after.xy == before.xy).all() and list(after.ids) == list(before.ids)


# --- status ------------------------------------------------------------------------------
def test_a_regions_status_raises_the_cells_below_it_in_one_undoable_action(store):
    image, ids, *_ = _image_with_cells(store)
    store.set_review_status(ids[3:4], "reviewed")  # above: stays
    region = editing.add_polygon(store, image, [[0, 0], [100, 0], [100, 100], [0, 100]],
                                 "tumour core", "tumour").uuid
    store.user = "bo"
    result = editing.set_status(store, region, "checked")
    assert result.count == 4  # ids 0, 1, 2 and 5 were unreviewed; 3 was reviewed already
    statuses = {c: store.cell(c).review_status for c in ids}
    assert [statuses[c] for c in ids] == ["checked", "checked", "checked", "reviewed",
                                          "unreviewed", "checked"]
    op = store.operations(1)[0]
    assert (op.action, op.user, op.n_cells) == ("region-status", "bo", 4)
    assert store.history(ids[0])[-1].user == "bo"
    assert store.region_history(region)[-1].action == "region-status"
    assert store.undo()  # one step: the region and its cells together
    assert store.region(region).status == "unreviewed"
    assert [store.cell(c).review_status for c in ids] == \
        ["unreviewed"] * 3 + ["reviewed", "unreviewed", "unreviewed"]


def test_marking_a_region_with_proposals_waiting_is_refused(store):
    image, *_ = _image_with_cells(store)
    region = editing.add_rectangle(store, image, 0, 0, 100, 100).uuid
    add_detections(store, image, [[80, 80], [90, 90]], [0.9, 0.8], method="test")
    with pytest.raises(RegionEditError, match="2 proposals waiting"):
        editing.set_status(store, region, "annotated")
    assert store.region(region).status == "unreviewed"


def test_names_and_renames(store):
    image = store.add_image("a.png", 100, 100)
    a = editing.add_rectangle(store, image, 0, 0, 10, 10).uuid
    b = editing.add_rectangle(store, image, 0, 0, 20, 20).uuid
    assert [r.name for r in store.regions(image)] == ["Region 1", "Region 2"]
    editing.rename(store, a, "stroma")
    editing.set_kind(store, b, "tissue")
    assert (store.region(a).name, store.region(b).kind) == ("stroma", "tissue")
    with pytest.raises(RegionEditError):
        editing.rename(store, a, "  ")
    editing.delete(store, a)
    assert [r.uuid for r in store.regions(image)] == [b]
