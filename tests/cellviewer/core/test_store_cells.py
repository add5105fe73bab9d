"""Cells, classes, spatial queries, filters and predictions against a real project file."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from cellviewer.core.store import UNLABELLED, ProjectError, ProjectStore


@pytest.fixture
def store(tmp_path):
    with ProjectStore.create(tmp_path / "p.cvproj") as s:
        yield s


def _scatter(store, n=5000, seed=0, size=(20_000, 15_000)):
    rng = np.random.default_rng(seed)
    image = store.add_image("/data/slide.svs", *size, mpp=0.5)
    tumour, stroma = store.add_class("tumour"), store.add_class("stroma")
    xy = rng.uniform(0, 1, (n, 2)) * size
    classes = rng.choice([tumour, stroma, -1], n)
    ids = store.add_cells(image, xy, classes, source="imported")
    return image, ids, xy, classes, (tumour, stroma)


def test_cells_keep_their_fields_and_ids_are_uuids(store):
    image = store.add_image("/data/a.png", 100, 80)
    tumour = store.add_class("tumour", "#FF0000", "1")
    ids = store.add_cells(image, [[10.5, 20.25], [30, 40]], [tumour, None],
                          metadata=[{"split": "train"}, None])
    assert len(ids) == 2 and all(uuid.UUID(i).version == 7 for i in ids)
    assert ids == sorted(ids)  # time-ordered: the uuid index grows at its end
    cell = store.cell(ids[0])
    assert (cell.image_id, cell.x, cell.y, cell.class_id) == (image, 10.5, 20.25, tumour)
    assert (cell.label_source, cell.review_status) == ("manual", "unreviewed")
    assert cell.updated_by == "test-user" and cell.updated_at.endswith("Z")
    assert cell.metadata == {"split": "train"}
    assert store.cell(ids[1]).class_id is None
    assert store.classes()[0].color == "#ff0000" and store.classes()[0].key == "1"
    assert store.image(image).cell_count == 2
    with pytest.raises(KeyError, match="no cell"):
        store.cell(str(uuid.uuid4()))


def test_bad_cell_input_is_refused_and_writes_nothing(store):
    image = store.add_image("/data/a.png", 100, 80)
    ops = len(store.operations())
    with pytest.raises(ValueError, match="finite"):
        store.add_cells(image, [[1, np.nan]])
    with pytest.raises(KeyError, match="no class 99"):
        store.add_cells(image, [[1, 2]], 99)
    with pytest.raises(KeyError, match="no image"):
        store.add_cells(12, [[1, 2]])
    with pytest.raises(ValueError, match="label source"):
        store.add_cells(image, [[1, 2]], source="guess")
    with pytest.raises(ValueError, match="not a UUID"):
        store.add_cells(image, [[1, 2]], ids=["cell-1"])
    given = str(uuid.uuid4())
    store.add_cells(image, [[1, 2]], ids=[given])
    with pytest.raises(ProjectError, match=given):
        store.add_cells(image, [[3, 4]], ids=[given])
    assert store.cell_count() == 1
    assert len(store.operations()) == ops + 1


def test_cells_in_rect_matches_a_brute_force_filter(store):
    image, ids, xy, classes, _ = _scatter(store, n=5000)
    other = store.add_image("/data/other.svs", 20_000, 15_000)
    store.add_cells(other, xy[:500])  # same places, another image: must not leak in
    rng = np.random.default_rng(1)
    rects = [(0, 0, 20_000, 15_000), (255.9, 256.0, 768.0, 1023.99), (-50, -50, 10, 10)]
    rects += [tuple(rng.uniform(0, 15_000, 4)) for _ in range(40)]
    ids_arr = np.array(ids, dtype=object)
    for x0, y0, x1, y1 in rects:
        got = store.cells_in_rect(image, x0, y0, x1, y1)
        lo_x, hi_x, lo_y, hi_y = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        want = (xy[:, 0] >= lo_x) & (xy[:, 0] <= hi_x) & (xy[:, 1] >= lo_y) & (xy[:, 1] <= hi_y)
        assert sorted(got.ids.tolist()) == sorted(ids_arr[want].tolist())
        order = {c: i for i, c in enumerate(ids)}
        idx = np.array([order[c] for c in got.ids], dtype=np.int64)
        np.testing.assert_array_equal(got.xy, xy[idx])
        np.testing.assert_array_equal(got.class_id, classes[idx])
    # A cell exactly on a band edge (y = 256) and on the rectangle's border is inside.
    edge = store.add_cells(image, [[100.0, 256.0]])[0]
    assert edge in store.cells_in_rect(image, 100.0, 256.0, 100.0, 256.0).ids.tolist()
    all_arrays = store.cell_arrays(image)
    assert len(all_arrays) == 5001 and all_arrays.xy.shape == (5001, 2)


def test_cells_in_rect_subsamples_evenly_when_asked(store):
    image, ids, xy, _, _ = _scatter(store, n=5000)
    full = store.cells_in_rect(image, 0, 0, 20_000, 15_000)
    some = store.cells_in_rect(image, 0, 0, 20_000, 15_000, max_cells=1000)
    assert 800 <= len(some) <= 1000
    assert set(some.ids.tolist()) <= set(full.ids.tolist())
    # Every quarter of the slide keeps its share: an even subsample, not the first rows.
    quarter = (some.xy[:, 0] < 10_000) & (some.xy[:, 1] < 7_500)
    assert 0.15 < quarter.mean() < 0.35
    again = store.cells_in_rect(image, 0, 0, 20_000, 15_000, max_cells=1000)
    assert again.ids.tolist() == some.ids.tolist()  # stable: no flicker while panning
    small = store.cells_in_rect(image, 0, 0, 500, 500, max_cells=1000)
    assert len(small) == len(store.cells_in_rect(image, 0, 0, 500, 500))


def test_class_edits_keys_and_order(store):
    a = store.add_class("a", key="1")
    b = store.add_class("b")
    c = store.add_class("c", "#00ff00")
    assert len({k.color for k in store.classes()}) == 3  # distinct colours picked
    store.set_class_key(b, "1")  # the key moves: one class per key
    assert {k.name: k.key for k in store.classes()} == {"a": "", "b": "1", "c": ""}
    store.rename_class(a, "alpha")
    assert store.class_id("alpha") == a and store.class_id("a") is None
    with pytest.raises(ProjectError, match="already exists"):
        store.rename_class(b, "alpha")
    with pytest.raises(ValueError, match="#rrggbb"):
        store.set_class_color(c, "green")
    store.reorder_classes([c, a, b])
    assert [k.name for k in store.classes()] == ["c", "alpha", "b"]
    with pytest.raises(ValueError, match="every class"):
        store.reorder_classes([c, a])


def test_merge_and_delete_class_relabel_cells(store):
    image, ids, _, classes, (tumour, stroma) = _scatter(store, n=300)
    n_stroma = int((classes == stroma).sum())
    assert store.merge_classes(stroma, tumour) == n_stroma
    assert store.class_id("stroma") is None
    assert (store.cell_arrays(image).class_id >= 0).sum() == int((classes >= 0).sum())
    merged = [h for h in store.history() if h.action == "merge"]
    assert len(merged) == n_stroma and {h.old_class for h in merged} == {"stroma"}
    assert store.delete_class(tumour) == int((classes >= 0).sum())
    assert (store.cell_arrays(image).class_id == -1).all()


def test_query_cells_filters_and_orders(store):
    image, ids, xy, classes, (tumour, stroma) = _scatter(store, n=400)
    model = store.add_model("cnn-1", "/models/cnn.safetensors", "cnn", ["stroma", "tumour"],
                            {"val_acc": 0.9})
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([1, 1], len(ids)).astype(np.float32)
    store.put_predictions(model, ids, probs)
    predicted = np.where(probs.argmax(1) == 0, stroma, tumour)
    confidence = probs.max(1)
    ids_arr = np.array(ids, dtype=object)

    assert set(store.query_cells(class_id=tumour)) == set(ids_arr[classes == tumour])
    assert set(store.query_cells(class_id=UNLABELLED)) == set(ids_arr[classes == -1])
    disagree = (classes >= 0) & (predicted != classes)
    assert set(store.query_cells(disagree_model_id=model)) == set(ids_arr[disagree])
    by_conf = store.query_cells(model_id=model, order="unsure-first")
    assert by_conf == ids_arr[np.lexsort((np.arange(len(ids)), confidence))].tolist()
    unsure = store.query_cells(model_id=model, max_confidence=0.6, order="sure-first")
    want = confidence <= 0.6
    assert set(unsure) == set(ids_arr[want])
    assert store.query_cells(model_id=model, limit=5) == by_conf[:5]
    assert set(store.query_cells(model_id=model, predicted_class_id=tumour)) == \
        set(ids_arr[predicted == tumour])
    store.set_review_status(ids[:10], "checked")
    assert set(store.query_cells(review_status="checked")) == set(ids[:10])
    with pytest.raises(ValueError, match="need a model"):
        store.query_cells(max_confidence=0.5)


def test_predictions_round_trip_in_any_order(store):
    image, ids, _, _, _ = _scatter(store, n=50)
    model = store.add_model("m", None, "mlp", ["tumour", "stroma", "necrosis"])
    rec = store.model(model)
    assert rec.classes == ["tumour", "stroma", "necrosis"]
    assert rec.class_ids == [store.class_id("tumour"), store.class_id("stroma"), None]
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], 40).astype(np.float32)
    store.put_predictions(model, ids[:40], probs)
    asked = [ids[39], ids[45], ids[0], ids[39]]
    got = store.predictions(model, asked)
    np.testing.assert_array_equal(got.probs[0], probs[39])
    assert np.isnan(got.probs[1]).all() and got.predicted[1] == -1
    np.testing.assert_array_equal(got.probs[2], probs[0])
    np.testing.assert_array_equal(got.probs[3], probs[39])
    assert got.confidence[2] == probs[0].max()
    assert got.predicted_names[2] == rec.classes[int(probs[0].argmax())]
    with pytest.raises(ValueError, match="shape"):
        store.put_predictions(model, ids[:2], probs[:2, :2])
    before = store.model(model).n_predictions
    with pytest.raises(KeyError, match="no cell"):
        store.put_predictions(model, [ids[0], str(uuid.uuid4())], probs[:2])
    assert store.model(model).n_predictions == before  # nothing of the failed call kept
    store.delete_cells(ids[:1])  # predictions go with their cell
    assert store.model(model).n_predictions == before - 1


def test_listeners_hear_every_committed_change(store):
    events = []
    store.add_listener(events.append)
    image = store.add_image("/data/a.png", 100, 80)
    ids = store.add_cells(image, [[1, 2], [3, 4]])
    store.set_labels(ids, store.add_class("t"))
    store.undo()
    kinds = [sorted(e.kinds) for e in events]
    assert kinds == [["images"], ["cells"], ["classes"], ["cells"], ["cells"]]
    assert events[1].image_ids == {image} and events[-1].action == "undo"
    store.remove_listener(events.append)
    store.redo()
    assert len(events) == 5


def test_per_cell_labels_and_internal_rows_are_accepted(store):
    image, ids, _, _, (tumour, stroma) = _scatter(store, n=100)
    arrays = store.cell_arrays(image)
    wanted = np.where(np.arange(len(arrays)) % 2 == 0, tumour, stroma)
    store.set_labels(arrays.rows, wanted, source="model-accepted")  # e.g. accept predictions
    again = store.cell_arrays(image)
    np.testing.assert_array_equal(again.class_id, wanted)
    assert store.undo_description() == "Label 100 cells"
    store.delete_cells(arrays.rows[:10])
    assert store.cell_count(image) == 90
    with pytest.raises(KeyError, match="no cell 999999"):
        store.set_review_status(np.array([999_999], dtype=np.int64), "checked")
