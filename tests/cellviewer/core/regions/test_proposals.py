"""Detections as proposals: skipped near existing markers, one undoable step per run, accepted
(keeping their origin) or deleted, drawn from ImageCells, and never in a training patch set
until accepted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.cells.image_cells import ImageCells
from cellviewer.core.regions import editing, proposals
from cellviewer.core.store import ProjectStore
from cellviewer.core.training.patchset import write_project_patchset
from cellviewer.core.training.project_data import ProjectCounts


@pytest.fixture
def store(tmp_path):
    s = ProjectStore.create(tmp_path / "r.cvproj")
    s.user = "ana"
    yield s
    s.close()


def test_a_detection_run_skips_existing_markers_and_is_one_undo(store):
    image = store.add_image("a.png", 200, 100)
    manual = store.add_cells(image, [[50, 50], [150, 50]])
    before = store.cell_arrays(image)
    xy = [[51, 51], [100, 50], [149, 47], [10, 10], [250, 10], [np.nan, 3]]
    result = proposals.add_detections(store, image, xy, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                                      method="classical nucleus", params={"sigma_px": 3},
                                      min_distance_px=4)
    # (51, 51) is 1.4 px from a marker, (149, 47) 3.2 px; (250, 10) and NaN are off the image
    assert (result.n_found, result.n_added, result.n_skipped) == (6, 2, 4)
    cells = store.cell_arrays(image)
    assert cells.proposed.sum() == 2
    kept = {tuple(p): s for p, s in zip(cells.xy.tolist(), cells.ids.tolist(), strict=True)}
    assert store.cell(kept[(100.0, 50.0)]).score == 0.8
    assert store.cell(kept[(100.0, 50.0)]).label_source == "detector"
    run = store.detection_runs(image)[0]
    assert (run.id, run.n_found, run.n_added) == (result.run_id, 6, 2)
    assert store.cell(kept[(10.0, 10.0)]).run_id == result.run_id
    # the existing markers did not move
    for cid, p in zip(manual, [[50, 50], [150, 50]], strict=True):
        assert [store.cell(cid).x, store.cell(cid).y] == p
    assert store.undo_description().startswith("Detect: 2 proposals")
    assert store.undo()
    after = store.cell_arrays(image)
    assert list(after.ids) == list(before.ids) and (after.xy == before.xy).all()


def test_a_second_run_over_its_own_proposals_adds_nothing(store):
    image = store.add_image("a.png", 100, 100)
    proposals.add_detections(store, image, [[20, 20], [60, 60]], method="m")
    again = proposals.add_detections(store, image, [[20.5, 20], [60, 61]], method="m")
    assert again.n_added == 0 and again.run_id is None and "none added" in again.message
    assert store.cell_count(image) == 2


def test_detect_and_classify_keeps_the_predicted_class_on_the_proposal(store):
    tumour = store.add_class("tumour")
    image = store.add_image("a.png", 100, 100)
    result = proposals.add_detections(store, image, [[20, 20], [60, 60]], [0.5, 0.6],
                                      method="m", class_ids=[tumour, None])
    assert [store.cell(i).class_id for i in result.ids] in ([tumour, None], [None, tumour])


def test_accept_in_a_region_and_delete_proposals(store):
    image = store.add_image("a.png", 200, 200)
    manual = store.add_cells(image, [[5, 5]])
    result = proposals.add_detections(store, image, [[20, 20], [40, 40], [150, 150]],
                                      [0.9, 0.8, 0.7], method="m")
    region = editing.add_rectangle(store, image, 0, 0, 100, 100).uuid
    by_xy = {store.cell(i).x: i for i in result.ids}
    assert proposals.delete_proposals(store, [by_xy[40.0]] + manual) == 1  # manual stays
    assert proposals.accept_in_region(store, region) == 1  # (20, 20); (150, 150) is outside
    accepted = store.cell(by_xy[20.0])
    assert not accepted.proposed and accepted.run_id == result.run_id
    assert store.cell(by_xy[150.0]).proposed
    assert editing.set_status(store, region, "annotated").count == 2
    assert proposals.proposals_of_image(store, image) == [by_xy[150.0]]


def test_image_cells_show_the_proposed_state_and_follow_an_accept(store):
    image = store.add_image("a.png", 100, 100)
    result = proposals.add_detections(store, image, [[20, 20], [60, 60]], method="m")
    cells = ImageCells()
    cells.begin_load(image, None)
    cells.replace(store.image_columns(image))
    store.add_listener(lambda event: cells.apply_store_change(store, event))
    changed = []
    cells.events.changed.connect(lambda idx, fields: changed.append(set(fields)))
    assert cells.proposed.tolist() == [True, True]
    proposals.accept(store, result.ids[:1])
    assert sorted(cells.proposed.tolist()) == [False, True]
    assert "proposed" in changed[-1]


def test_proposals_enter_no_patch_set_until_accepted(store, tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (100, 100, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    tumour = store.add_class("tumour")
    image = store.add_image(tmp_path / "a.png", 100, 100)
    manual = store.add_cells(image, [[50, 50]], tumour)
    result = proposals.add_detections(store, image, [[20, 20], [80, 80]], method="m",
                                      class_ids=[tumour, tumour])
    ps = write_project_patchset(store, tmp_path / "one.patches")
    assert ps.cell_ids == manual
    assert ProjectCounts.from_store(store).counts.tolist() == [[1]]
    unlabelled = write_project_patchset(store, tmp_path / "u.patches", include_unlabelled=True)
    assert unlabelled.cell_ids == manual
    proposals.accept(store, result.ids)
    ps = write_project_patchset(store, tmp_path / "all.patches")
    assert sorted(ps.cell_ids) == sorted(manual + list(result.ids))
    assert ProjectCounts.from_store(store).counts.tolist() == [[3]]
