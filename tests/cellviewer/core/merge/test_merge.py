"""Three annotators' copies of a small real project (Chula RBC-12 cells) edited in different
ways and merged back: which changes win, which become conflicts, the history kept once, a
second merge that changes nothing, and the undo of a merge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from merge_cohort import CHULA, cells, class_id, make_project

from cellviewer.core.merge import MergeError, copy_for, merge
from cellviewer.core.store import ProjectStore


def test_a_copy_records_its_origin_and_its_base(tmp_path):
    target = make_project(tmp_path / "cohort.cvproj")
    (tmp_path / "annotators").mkdir()  # another folder: the image paths still resolve
    copy = copy_for(target, tmp_path / "annotators" / "ana.cvproj", "ana")
    with ProjectStore.open(target, readonly=True) as t, ProjectStore.open(copy) as c:
        assert c.origin() == {"project": t.project_id, "entry": t.last_history_entry(),
                              "images": [1], "user": "ana"}
        assert c.project_id != t.project_id and c.name == "cohort (ana)"
        base_cells, base_regions = c.merge_base()
        assert len(base_cells) == 28 and len(base_regions) == 1
        assert c.images()[0].path == (CHULA / "chula-10-crop.png").resolve()
    with pytest.raises(Exception, match="already exists"):
        copy_for(target, copy, "ben")


def test_three_annotators_merge_with_conflicts_kept_side_by_side(cohort):
    target, copies, start, c = cohort
    results = merge(target, [copies["ana"], copies["ben"], copies["cy"]], "pat")
    after = cells(target)
    # one side only: ana's relabel and confirm, ana's delete, cy's move win
    assert after[c[0]][2] == "5"
    assert after[c[2]][3] == "checked"
    assert c[3] not in after
    assert after[c[5]][0] == start[c[5]][0] + 1.0
    # ana 6 vs ben 8 on one cell: a conflict, the target keeps the first merged side (ana)
    assert after[c[1]][2] == "6"
    # ben relabelled c4, cy deleted it: ben's label is kept, cy's delete is a conflict
    assert after[c[4]][2] == "9"
    # ana's, ben's and cy's added cells near (100, 100) are one cell; ben's other cell is new
    near = [u for u, v in after.items() if abs(v[0] - 100) < 3 and abs(v[1] - 100) < 3]
    assert len(near) == 1 and after[near[0]][2] == "7"
    assert any(v[:3] == (300.0, 20.0, "2") for v in after.values())
    assert len(after) == 28 - 1 + 1 + 1
    assert [r.matched_by_position for r in results] == [0, 1, 1]
    assert [r.added for r in results] == [1, 1, 0]
    with ProjectStore.open(target, readonly=True) as store:
        conflicts = store.conflicts()
        got = sorted((x["kind"], x["source_name"], x["ours_class"], x["theirs_class"],
                      x["theirs_by"]) for x in conflicts)
        assert got == sorted([
            ("label", "ben.cvproj", "6", "8", "ben"),        # ana (merged first) vs ben
            ("delete-edit", "cy.cvproj", "9", None, "cy"),   # ben's edit here, cy deleted
            ("label", "cy.cvproj", "7", "3", "cy"),          # the cell added three times
        ])
        assert all(x["ours_by"] and x["ours_at"] and x["theirs_at"] for x in conflicts)
        assert store.regions()[0].status == "annotated"
        # every annotator's history entries are kept, once, marked with their copy
        entries = store.history_entries()
        assert len({e["uuid"] for e in entries}) == len(entries)
        by_copy = {e["copied_from"] for e in entries if e["user"] in ("ana", "ben", "cy")}
        assert len(by_copy) == 3 and None not in by_copy
        assert store.operations(limit=1)[0].action == "merge"


def test_merging_the_same_files_again_changes_nothing(cohort):
    target, copies, _, _ = cohort
    merge(target, list(copies.values()), "pat")
    before, ops = cells(target), _count(target, "operations")
    history, conflicts = _count(target, "history"), _count(target, "conflicts")
    results = merge(target, list(copies.values()), "pat")
    assert not any(r.changed_anything for r in results)
    assert cells(target) == before
    assert (_count(target, "operations"), _count(target, "history"),
            _count(target, "conflicts")) == (ops, history, conflicts)


def test_a_merge_is_one_step_that_undo_takes_back(cohort):
    target, copies, _, _ = cohort
    before = cells(target)
    merge(target, list(copies.values()), "pat")
    assert cells(target) != before
    with ProjectStore.open(target) as store:
        store.user = "pat"
        assert store.undo_description() == "Merge ana.cvproj, ben.cvproj, cy.cvproj"
        assert store.undo()
        assert store.regions()[0].status == "unreviewed"
        assert store.conflicts() == []  # an undone merge's conflicts are not open
        assert store.redo() and len(store.conflicts()) == 3
        assert store.undo()
    assert cells(target) == before


def test_a_file_that_is_not_a_copy_is_refused_and_nothing_changes(tmp_path):
    target = make_project(tmp_path / "cohort.cvproj")
    stranger = make_project(tmp_path / "other.cvproj")
    ops = _count(target, "operations")
    with pytest.raises(MergeError, match=r"other.cvproj: is not a copy of cohort.cvproj"):
        merge(target, [stranger], "pat")
    assert _count(target, "operations") == ops


def test_the_position_tolerance_is_in_micrometres_where_the_pixel_size_is_known(tmp_path):
    target = make_project(tmp_path / "cohort.cvproj", mpp=0.5)  # 2 µm = 4 px
    a, b = (copy_for(target, tmp_path / f"{u}.cvproj", u) for u in ("a", "b"))
    for path, x in ((a, 50.0), (b, 53.5)):
        with ProjectStore.open(path) as s:
            s.user = path.stem
            s.add_cells(1, [[x, 60.0]], [class_id(s, "1")])
    merge(target, [a, b], "pat", tolerance_um=1.0)  # 2 px: two cells
    assert len(cells(target)) == 30
    with ProjectStore.open(target) as s:
        s.user = "pat"
        s.undo()
    merge(target, [a, b], "pat")  # 4 px: one cell
    assert len(cells(target)) == 29


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_proposals_accepted_or_added_in_a_copy_come_back(tmp_path):
    target = make_project(tmp_path / "cohort.cvproj")
    with ProjectStore.open(target) as s:
        s.user = "lab"
        first, second = s.add_cells(1, [[200.0, 200.0], [210.0, 200.0]], source="detector",
                                    proposed=True, scores=[0.9, 0.4])
    copy = copy_for(target, tmp_path / "ana.cvproj", "ana")
    with ProjectStore.open(copy) as s:
        s.user = "ana"
        s.accept_proposals([first])
        s.add_cells(1, [[20.0, 200.0]], source="detector", proposed=True, scores=[0.5])
    (result,) = merge(target, [copy], "pat")
    assert (result.accepted, result.added) == (1, 1)
    with ProjectStore.open(target, readonly=True) as s:
        assert not s.cell(first).proposed and s.cell(second).proposed
        assert int(s.cell_table()["proposed"].sum()) == 2
