"""The cohort of the merge tests: the project and three annotators' copies of it, each
edited differently (see merge_cohort.py for the project)."""

from __future__ import annotations

import pytest
from merge_cohort import cells, class_id, make_project

from cellviewer.core.merge import copy_for
from cellviewer.core.store import ProjectStore


@pytest.fixture
def cohort(tmp_path):
    """The project, its three copies edited by ana, ben and cy, and the cells at the start."""
    target = make_project(tmp_path / "cohort.cvproj")
    start = cells(target)
    order = sorted(start, key=lambda u: (start[u][0], start[u][1]))
    c = {i: order[i] for i in range(len(order))}  # cells by position order, for the edits
    copies = {u: copy_for(target, tmp_path / f"{u}.cvproj", u) for u in ("ana", "ben", "cy")}
    with ProjectStore.open(copies["ana"]) as s:
        s.user = "ana"
        s.set_labels([c[0]], class_id(s, "5"))             # one side only: wins
        s.set_labels([c[1]], class_id(s, "6"))             # conflict with ben
        s.set_review_status([c[2]], "checked")             # confirm
        s.delete_cells([c[3]])                             # one side only: deleted
        s.add_cells(1, [[100.0, 100.0]], [class_id(s, "7")])  # added on two sides
        s.update_region(s.regions()[0].uuid, status="annotated")
    with ProjectStore.open(copies["ben"]) as s:
        s.user = "ben"
        s.set_labels([c[1]], class_id(s, "8"))             # conflict with ana
        s.set_labels([c[4]], class_id(s, "9"))             # ben edits, cy deletes: conflict
        s.add_cells(1, [[101.5, 101.0]], [class_id(s, "7")])  # ana's cell, 1.8 px away
        s.add_cells(1, [[300.0, 20.0]], [class_id(s, "2")])   # new here only
    with ProjectStore.open(copies["cy"]) as s:
        s.user = "cy"
        s.delete_cells([c[4]])
        s.move_cells([c[5]], [[start[c[5]][0] + 1.0, start[c[5]][1]]])
        s.add_cells(1, [[100.5, 99.0]], [class_id(s, "3")])   # ana's cell again, other label
    return target, copies, start, c
