"""The store's regions, proposals and detection runs (schema version 3): undoable, in the
history, and flipped back with every field a detection carries."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core.store import ProjectError, ProjectStore

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]]}
OTHER = {"type": "Polygon", "coordinates": [[[0, 0], [50, 0], [50, 50], [0, 0]]]}


@pytest.fixture
def store(tmp_path):
    s = ProjectStore.create(tmp_path / "r.cvproj")
    s.user = "ana"
    yield s
    s.close()


def test_a_region_is_added_edited_and_deleted_with_undo_and_a_trail(store):
    image = store.add_image("a.png", 200, 200)
    events = []
    store.add_listener(events.append)
    uuid = store.add_region(image, SQUARE, "first", "tumour")
    assert "regions" in events[-1].kinds
    region = store.region(uuid)
    assert (region.name, region.kind, region.status, region.created_by) == \
        ("first", "tumour", "unreviewed", "ana")
    assert region.geometry == SQUARE
    store.user = "bo"
    assert store.update_region(uuid, name="renamed", geometry=OTHER)
    assert not store.update_region(uuid, name="renamed")  # nothing changes: no action
    assert store.region(uuid).updated_by == "bo"
    store.delete_region(uuid)
    assert store.regions(image) == []
    assert store.undo()  # the delete
    back = store.region(uuid)
    assert (back.name, back.geometry, back.id) == ("renamed", OTHER, region.id)
    assert store.undo()  # the edit
    assert store.region(uuid).name == "first" and store.region(uuid).geometry == SQUARE
    assert store.redo()
    assert store.region(uuid).name == "renamed"
    assert store.undo() and store.undo()  # the edit, then the add
    with pytest.raises(KeyError):
        store.region(uuid)
    trail = [(h.action, h.user) for h in store.region_history(uuid)]
    assert trail == [("region-add", "ana"), ("region-edit", "bo"), ("region-delete", "bo"),
                     ("undo", "bo"), ("undo", "bo"), ("redo", "bo"), ("undo", "bo"),
                     ("undo", "bo")]
    assert store.region_history(uuid)[-1].new is None  # the add undone: gone
    assert store.integrity_check() == "ok"


def test_bad_regions_are_refused_and_change_nothing(store):
    image = store.add_image("a.png", 200, 200)
    with pytest.raises(ValueError, match="GeoJSON Polygon"):
        store.add_region(image, {"type": "Point", "coordinates": [1, 2]})
    with pytest.raises(ValueError, match="kind"):
        store.add_region(image, SQUARE, kind=" ")
    with pytest.raises(ValueError, match="review status"):
        store.add_region(image, SQUARE, status="done")
    uuid = store.add_region(image, SQUARE)
    with pytest.raises(ProjectError, match="already in"):
        store.add_region(image, SQUARE, uuid=uuid)
    assert len(store.regions()) == 1


def test_removing_an_image_removes_its_regions_and_undo_brings_both_back(store):
    image = store.add_image("a.png", 200, 200)
    store.add_cells(image, [[10, 10]])
    uuid = store.add_region(image, SQUARE, "r")
    store.remove_image(image)
    assert store.regions() == []
    assert store.undo()
    assert store.region(uuid).image_id == image and store.cell_count(image) == 1


def test_proposals_keep_their_origin_when_accepted_and_undo_restores_them(store):
    image = store.add_image("a.png", 200, 200)
    manual = store.add_cells(image, [[5, 5]])
    run = store.add_detection_run(image, "classical nucleus", {"sigma_px": 3})
    ids = store.add_cells(image, [[10, 10], [20, 20], [30, 30]], source="detector",
                          proposed=True, scores=[0.9, np.nan, 0.4], run_id=run)
    arrays = store.cell_arrays(image)
    assert arrays.proposed.tolist() == [False, True, True, True]
    columns = store.image_columns(image)
    assert columns.proposed.tolist() == [False, True, True, True]
    assert store.cell(ids[1]).score is None  # NaN: no score
    assert store.accept_proposals(ids[:2] + manual) == 2  # the manual cell is no proposal
    cell = store.cell(ids[0])
    assert (cell.proposed, cell.label_source, cell.score, cell.run_id) == \
        (False, "detector", 0.9, run)
    assert [h.action for h in store.history(ids[0])] == ["propose", "accept"]
    store.delete_cells(ids[2:])
    assert store.undo()  # the delete brings the proposal back as a proposal
    back = store.cell(ids[2])
    assert (back.proposed, back.score, back.run_id) == (True, 0.4, run)
    assert store.undo()  # the accept
    assert store.cell(ids[0]).proposed and store.cell(ids[0]).score == 0.9
    assert store.undo()  # the detection run's proposals: one step
    assert store.cell_count(image) == 1
    runs = store.detection_runs(image)
    assert [(r.method, r.params) for r in runs] == [("classical nucleus", {"sigma_px": 3})]


def test_cell_table_and_records_carry_the_outline(store):
    image = store.add_image("a.png", 200, 200)
    outline = '{"type":"Polygon","coordinates":[[[0,0],[4,0],[4,4],[0,0]]]}'
    ids = store.add_cells(image, [[1, 1], [2, 2]], outlines=[outline, None])
    table = store.cell_table([image])
    assert table["outline"] == [outline, None]
    assert table["proposed"].tolist() == [False, False]
    assert store.cell(ids[0]).outline == outline
