"""The column cache (schema v5): a large image's columns come from one row of BLOBs, and no
change to its cells, by any path or connection, ever lets a stale copy be read."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core.store import ProjectStore, cell_columns


def _fresh(store: ProjectStore, image: int):
    """The columns read from the cells table itself (no cache)."""
    return store._read_columns("c.image_id = ?", (image,))


def _same(a, b) -> None:
    for name in ("ids", "rows", "image_id", "xy", "class_id", "source", "review", "proposed",
                 "pred_class"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(np.isnan(a.confidence), np.isnan(b.confidence))


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(cell_columns, "CACHE_CELLS_FROM", 50)
    store = ProjectStore.create(tmp_path / "p.cvproj")
    store.user = "tester"
    image = store.add_image(tmp_path / "a.png", 1000, 1000)
    other = store.add_image(tmp_path / "b.png", 1000, 1000)
    rng = np.random.default_rng(1)
    store.add_cells(image, rng.uniform(0, 1000, (200, 2)))
    store.add_cells(other, rng.uniform(0, 1000, (60, 2)))
    store.add_class("tumour")
    yield store, image, other
    store.close()


def _settled(store: ProjectStore) -> None:
    """Let the checkpointer finish: its WAL restart counts as another connection's commit in
    ``data_version``, and a read that overlaps one keeps no cache (a miss, never stale)."""
    assert store.wait_for_checkpoint(30)


def _cached(store: ProjectStore, image: int) -> bool:
    return store._cached_columns(image) is not None


def test_a_large_image_is_read_from_the_cache_after_its_first_read(project):
    store, image, other = project
    assert not _cached(store, image)
    _settled(store)
    first = store.image_columns(image)
    assert _cached(store, image) and not _cached(store, other)
    _same(store.image_columns(image), first)
    _same(first, _fresh(store, image))


@pytest.mark.parametrize("edit", ["label", "review", "move", "delete", "add", "undo", "accept",
                                  "move to other image"])
def test_every_change_of_the_cells_drops_the_cache(project, edit):
    store, image, other = project
    _settled(store)
    store.image_columns(image)
    assert _cached(store, image)
    ids = list(store.image_columns(image).ids[:5])
    tumour = store.classes()[0].id
    if edit == "label":
        store.set_labels(ids, tumour)
    elif edit == "review":
        store.set_review_status(ids, "checked")
    elif edit == "move":
        store.move_cells(ids, np.full((5, 2), 3.0))
    elif edit == "delete":
        store.delete_cells(ids)
    elif edit == "add":
        store.add_cells(image, [[5.0, 5.0]])
    elif edit == "undo":
        store.set_labels(ids, tumour)
        _settled(store)
        store.image_columns(image)
        assert _cached(store, image)
        store.undo()
    elif edit == "accept":
        store.add_cells(image, [[7.0, 7.0]], source="detector", proposed=True, scores=[0.9])
        _settled(store)
        cols = store.image_columns(image)
        assert _cached(store, image)
        store.accept_proposals(cols.ids[cols.proposed])
    else:
        store.image_columns(other)
        assert _cached(store, other)
        store._conn.execute("UPDATE cells SET image_id = ? WHERE uuid = ?", (other, ids[0]))
        assert not _cached(store, other)
    assert not _cached(store, image)
    _same(store.image_columns(image), _fresh(store, image))


def test_another_connections_change_is_seen(project, tmp_path):
    store, image, _ = project
    store.image_columns(image)
    with ProjectStore.open(store.path, readonly=True) as reader:
        _same(reader.image_columns(image), _fresh(store, image))  # read-only: reads the cache
        ids = list(store.image_columns(image).ids[:3])
        store.set_labels(ids, store.classes()[0].id)
        got = reader.image_columns(image)
        assert (got.class_id[np.isin(got.ids, ids)] == store.classes()[0].id).all()


def test_the_prediction_comes_with_the_cached_columns(project):
    store, image, _ = project
    model = store.add_model("m", None, None, ["tumour", "other"])
    cols = store.image_columns(image)
    probs = np.tile(np.array([[0.8, 0.2]], dtype=np.float32), (len(cols), 1))
    _settled(store)
    store.image_columns(image)
    store.put_predictions(model, cols.rows, probs)
    assert _cached(store, image)  # a prediction is not a change of the cells
    got = store.image_columns(image, model)
    assert (got.pred_class == store.classes()[0].id).all()
    np.testing.assert_allclose(got.confidence, 0.8)


def test_a_change_by_another_connection_during_the_read_leaves_no_cache(project, monkeypatch):
    store, image, _ = project
    read = store._read_columns

    def read_then_other_writes(*args, **kwargs):
        cols = read(*args, **kwargs)
        with ProjectStore.open(store.path) as other:  # commits after this read began
            other.user = "someone else"
            other.set_labels(list(cols.ids[:2]), other.classes()[0].id)
        return cols

    monkeypatch.setattr(store, "_read_columns", read_then_other_writes)
    store.image_columns(image)
    assert not _cached(store, image)
    monkeypatch.setattr(store, "_read_columns", read)
    _settled(store)
    _same(store.image_columns(image), _fresh(store, image))
    assert _cached(store, image)  # a later read keeps it
