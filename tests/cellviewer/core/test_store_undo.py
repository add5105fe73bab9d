"""Undo/redo as store operations, and the append-only history that records them."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from cellviewer.core.store import ProjectError, ProjectStore
from cellviewer.core.store import undo as undo_module


@pytest.fixture
def store(tmp_path):
    with ProjectStore.create(tmp_path / "p.cvproj") as s:
        yield s


def _state(store, image):
    a = store.cell_arrays(image)
    order = np.argsort(a.ids)
    return a.ids[order].tolist(), a.xy[order].tolist(), a.class_id[order].tolist(), \
        a.review[order].tolist()


def test_bulk_relabel_of_10000_cells_is_one_action_and_undoes_exactly(store):
    image = store.add_image("/data/slide.svs", 50_000, 50_000)
    classes = [store.add_class(n) for n in ("tumour", "stroma", "immune")]
    rng = np.random.default_rng(0)
    labels = rng.choice(classes + [-1], 12_000)
    ids = store.add_cells(image, rng.uniform(0, 50_000, (12_000, 2)), labels, source="imported")
    before = _state(store, image)
    chosen = ids[1000:11_000]
    expected_changed = 10_000  # the source changes for all, the class for most

    assert store.set_labels(chosen, classes[2], source="corrected") == expected_changed
    ops = len(store.operations(None))
    assert store.set_labels(chosen, classes[2], source="corrected") == 0  # nothing to change
    assert len(store.operations(None)) == ops  # and so no action recorded
    op = store.operations(limit=1)[0]
    assert (op.action, op.n_cells, op.state) == ("label", expected_changed, "done")
    assert store.undo_description() == "Label 10,000 cells as immune"
    after = _state(store, image)
    now = store.cell_arrays(image)
    assert (now.class_id[np.isin(now.ids, chosen)] == classes[2]).all()

    assert store.undo() is True
    assert _state(store, image) == before
    restored = store.cell(ids[1000])
    assert restored.label_source == "imported"  # the source comes back with the label
    assert store.redo() is True
    assert _state(store, image) == after
    assert store.cell(ids[1000]).label_source == "corrected"

    # History: label rows, then undo rows, then redo rows, each with who/when/source.
    rows = store.history(op_id=op.id)
    actions = [h.action for h in rows]
    assert actions.count("label") == actions.count("undo") == actions.count("redo") \
        == expected_changed
    first = [h for h in rows if h.cell_id == ids[1000]]
    old = store.class_record(labels[1000]).name if labels[1000] >= 0 else None
    assert [(h.action, h.old_class, h.new_class) for h in first] == [
        ("label", old, "immune"), ("undo", "immune", old), ("redo", old, "immune")]
    assert all(h.user == "test-user" for h in first)
    assert first[1].detail == {"op": op.id, "reverts": "label"}
    assert first[1].source == "imported" and first[2].source == "corrected"


def test_every_kind_of_edit_undoes_and_redoes(store):
    image = store.add_image("/data/a.png", 1000, 1000)
    t = store.add_class("tumour")
    ids = store.add_cells(image, [[10, 10], [20, 20], [30, 30]], t)
    model = store.add_model("m", None, "cnn", ["tumour", "other"])
    store.put_predictions(model, ids, np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], "f4"))
    snapshots = [_state(store, image)]
    store.move_cell(ids[0], 15.5, 12.0)
    snapshots.append(_state(store, image))
    store.set_review_status(ids[:2], "reviewed")
    snapshots.append(_state(store, image))
    store.set_labels([ids[2]], None)
    snapshots.append(_state(store, image))
    store.delete_cells(ids[1:])
    snapshots.append(_state(store, image))
    new = store.add_cells(image, [[500, 500]])
    snapshots.append(_state(store, image))

    for expected in reversed(snapshots[:-1]):
        assert store.undo()
        assert _state(store, image) == expected
    # Deleted cells came back with their ids and their predictions.
    back = store.predictions(model, ids)
    np.testing.assert_allclose(back.probs[1], [0.2, 0.8])
    for expected in snapshots[1:]:
        assert store.redo()
        assert _state(store, image) == expected
    assert not store.can_redo()
    assert store.cell(new[0]).x == 500
    move = [h for h in store.history(ids[0]) if h.action == "move"][0]
    assert move.detail == {"from": [10.0, 10.0], "to": [15.5, 12.0]}


def test_a_new_edit_drops_the_redo_stack(store):
    image = store.add_image("/data/a.png", 100, 100)
    ids = store.add_cells(image, [[1, 1]])
    t = store.add_class("t")
    store.set_labels(ids, t)
    store.undo()
    assert store.can_redo() and store.redo_description().startswith("Label 1 cell")
    store.move_cell(ids[0], 5, 5)
    assert not store.can_redo()
    assert store.operations(limit=2)[1].state == "discarded"


def test_batch_is_one_action_and_a_failing_batch_leaves_nothing(store):
    image = store.add_image("/data/a.png", 100, 100)
    with store.batch("Annotate"):
        t = store.add_class("t")
        ids = store.add_cells(image, [[1, 1], [2, 2]], t)
        store.set_review_status(ids, "annotated")
    assert store.operations(limit=1)[0].description == "Annotate"
    n_ops, n_hist = len(store.operations(None)), len(store.history())
    with pytest.raises(KeyError), store.batch("Broken"):
        store.add_cells(image, [[3, 3]])
        store.add_class("u")
        store.set_labels(ids, 999)
    assert store.cell_count() == 2 and store.class_id("u") is None
    assert len(store.operations(None)) == n_ops and len(store.history()) == n_hist
    assert store.undo()  # undoes the whole "Annotate" batch
    assert store.cell_count() == 0 and store.class_id("t") is None
    with store.batch("x"), pytest.raises(ProjectError, match="inside a batch"):
        store.undo()


def test_class_edits_undo_including_a_merge_and_the_model_mapping(store):
    image = store.add_image("/data/a.png", 100, 100)
    a, b = store.add_class("a", "#112233", "1"), store.add_class("b")
    ids = store.add_cells(image, [[1, 1], [2, 2]], [a, b])
    model = store.add_model("m", None, "cnn", ["a", "b"])
    store.rename_class(a, "b2")
    store.rename_class(b, "a")
    store.rename_class(a, "b")  # names swapped through three renames
    store.set_class_key(b, "1")
    store.merge_classes(b, a)
    assert store.model(model).class_ids == [a, a]
    assert [c.name for c in store.classes()] == ["b"]
    for _ in range(5):
        assert store.undo()
    assert [(c.id, c.name, c.color, c.key) for c in store.classes()] == [
        (a, "a", "#112233", "1"), (b, "b", store.class_record(b).color, "")]
    assert store.model(model).class_ids == [a, b]
    assert [store.cell(i).class_id for i in ids] == [a, b]
    while store.redo():
        pass
    assert [c.name for c in store.classes()] == ["b"] and store.model(model).class_ids == [a, a]


def test_undo_survives_closing_and_reopening(tmp_path):
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        image = store.add_image("/data/a.png", 100, 100)
        t = store.add_class("t")
        ids = store.add_cells(image, [[1, 1]])
        store.set_labels(ids, t)
    with ProjectStore.open(path) as store:
        assert store.undo_description() == "Label 1 cell as t"
        store.undo()
        assert store.cell(ids[0]).class_id is None


def test_old_actions_expire_but_keep_their_history(store, monkeypatch):
    monkeypatch.setattr(undo_module, "MAX_UNDO", 3)
    image = store.add_image("/data/a.png", 100, 100)
    ids = store.add_cells(image, [[1, 1]])
    for i in range(5):
        store.move_cell(ids[0], i, i)
    undone = 0
    while store.undo():
        undone += 1
    assert undone == 3
    assert store.cell(ids[0]).x == 1  # the position after the 2nd move
    states = [o.state for o in store.operations(None)]
    assert states.count("expired") == 4 and states.count("undone") == 3
    assert len([h for h in store.history(ids[0]) if h.action == "move"]) == 5


def test_history_cannot_be_edited_or_deleted(store):
    image = store.add_image("/data/a.png", 100, 100)
    store.add_cells(image, [[1, 1]])
    raw = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE history SET user = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM history")
    raw.rollback()
    raw.close()
    assert [h.user for h in store.history()] == ["test-user"]
