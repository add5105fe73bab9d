"""The study's protocol on the merged Chula cohort: roles with names, the conflicts queue
resolved by a class key and by picking an annotator's label (recorded in the history, undone
with the action), the pathologist's queue and decision, and the export's per-annotator
columns."""

from __future__ import annotations

import csv

import pytest
from merge_cohort import cells

from cellviewer.core.export import export_cells_csv
from cellviewer.core.merge import merge
from cellviewer.core.merge.agreement import annotator_labels, cell_annotator_labels
from cellviewer.core.merge.protocol import (
    Choice,
    choices,
    conflict_queue,
    decide,
    pathologist_queue,
    roles,
    set_role,
)
from cellviewer.core.store import ProjectError, ProjectStore


def test_roles_are_kept_with_names(tmp_path):
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        set_role(store, "ana", "annotator")
        set_role(store, "ben", "checker")
        set_role(store, "pat", "pathologist")
        set_role(store, "ben", None)
        with pytest.raises(ValueError, match="role 'boss'"):
            set_role(store, "cy", "boss")
    with ProjectStore.open(tmp_path / "p.cvproj", readonly=True) as store:
        assert roles(store) == {"ana": "annotator", "pat": "pathologist"}


def test_conflicts_resolved_by_key_and_by_choice(cohort):
    target, copies, _, c = cohort
    merge(target, list(copies.values()), "pat")
    with ProjectStore.open(target) as store:
        store.user = "pat"
        queue = conflict_queue(store)
        assert len(queue) == 3 and c[1] in queue and c[4] in queue
        assert choices(store, c[1]) == [Choice("ana", "6"), Choice("ben", "8")]
        assert Choice("cy", None, present=False) in choices(store, c[4])
        # by key: class 3
        decide(store, c[1], "3", how="key")
        assert store.class_record(store.cell(c[1]).class_id).name == "3"
        assert c[1] not in conflict_queue(store)
        entry = store.history(c[1])[-1]
        assert entry.action == "resolve" and entry.user == "pat" and entry.new_class == "3"
        assert store.undo_description() == "Resolve conflict: 3"
        # the resolution is nobody's label: the annotators' disagreement stays measured
        assert cell_annotator_labels(store, c[1]) == {"ana": "6", "ben": "8"}
        assert annotator_labels(store)[c[1]] == {"ana": "6", "ben": "8"}
        # undo opens the conflict again, redo closes it
        assert store.undo() and c[1] in conflict_queue(store)
        assert store.class_record(store.cell(c[1]).class_id).name == "6"
        assert store.redo() and c[1] not in conflict_queue(store)
        # by choice: cy deleted c4, ben relabelled it; take cy's side
        decide(store, c[4], None, present=False, how="choice cy")
        assert c[4] not in cells(target) and conflict_queue(store) == [queue[2]]
        (row,) = [x for x in store.conflicts(open_only=False) if x["cell_uuid"] == c[4]]
        assert row["resolved_by"] == "pat" and '"how": "choice cy"' in row["resolution"]
        with pytest.raises(ProjectError, match="no open conflict"):
            decide(store, c[4], "1")


def test_the_pathologists_queue_and_decision(cohort):
    target, copies, _, c = cohort
    merge(target, list(copies.values()), "pat")
    with ProjectStore.open(target) as store:
        store.user = "pat"
        queue = pathologist_queue(store)
        # the three conflicts, then ana's double-checked cell c2
        assert queue[:3] == conflict_queue(store) and queue[3:] == [c[2]]
        name = store.class_record(store.cell(c[2]).class_id).name
        decide(store, c[2], name, status="reviewed")
        decide(store, c[1], "8", status="reviewed", how="choice ben")
        assert store.cell(c[2]).review_status == "reviewed"
        assert store.cell(c[1]).review_status == "reviewed"
        assert c[1] not in pathologist_queue(store) and c[2] not in pathologist_queue(store)


def test_the_export_carries_each_annotators_label(cohort, tmp_path):
    target, copies, start, c = cohort
    merge(target, list(copies.values()), "pat")
    out = tmp_path / "cells.csv"
    with ProjectStore.open(target, readonly=True) as store:
        export_cells_csv(store, out, model_id=None)
    with open(out, newline="") as f:
        rows = {r["cell_id"]: r for r in csv.DictReader(f)}
    row = rows[c[1]]
    assert (row["label"], row["annotator_ana"], row["annotator_ben"], row["annotator_cy"]) \
        == ("6", "6", "8", "")
    assert row["conflict"] == "open" and rows[c[0]]["conflict"] == ""
    assert rows[c[2]]["annotator_ana"] == start[c[2]][2]  # a confirm
    assert rows[c[0]]["label_source"] == "manual"
