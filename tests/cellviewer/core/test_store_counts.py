"""Per-image cell counts are cached: relabelling, reviewing and moving never recount the
project; adding and deleting do; one image's count never needs the whole project's recount."""

from __future__ import annotations

import numpy as np

from cellviewer.core.store import ProjectStore


def _queries(store: ProjectStore) -> list[str]:
    """Record the store's statements. Its background checkpointer is stopped first: truncating
    the write-ahead log changes PRAGMA data_version, which the cache reads as another
    connection's write (a recount then is right, but not what this test is about)."""
    store.wait_for_checkpoint()
    store._checkpointer.close()
    store._checkpointer = None
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    return seen


def test_count_neutral_edits_keep_the_cached_counts(tmp_path):
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        a = store.add_class("a")
        one, two = store.add_image("1.png", 100, 100), store.add_image("2.png", 100, 100)
        ids = store.add_cells(one, np.random.default_rng(0).uniform(0, 99, (20, 2)))
        store.add_cells(two, [[5.0, 5.0]])
        seen = _queries(store)
        assert [r.cell_count for r in store.images()] == [20, 1]
        seen.clear()
        store.set_labels(ids[:5], a)
        store.set_review_status(ids[:2], "checked")
        store.move_cell(ids[0], 50.0, 50.0)
        assert [r.cell_count for r in store.images()] == [20, 1]
        assert not any("GROUP BY" in q for q in seen)
        store.delete_cells(ids[:3])  # a count changes: recounted once
        assert [r.cell_count for r in store.images()] == [17, 1]
        assert sum("GROUP BY" in q for q in seen) == 1
        store.undo()
        seen.clear()
        assert store.image(one).cell_count == 20  # stale counts: one image counted, not all
        assert not any("GROUP BY" in q for q in seen)
        assert store.image_names() == {one: "1.png", two: "2.png"}


def test_one_images_count_is_counted_once_until_the_file_changes(tmp_path):
    """After another connection's write the cached counts are stale: asking for one image
    again and again (the cell panel and the preview do, for every selected cell) counts it
    once, and counts again once the file changes, here or elsewhere."""
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        one = store.add_image("1.png", 100, 100)
        ids = store.add_cells(one, np.random.default_rng(0).uniform(0, 99, (20, 2)))
        with ProjectStore.open(path) as other:
            other.add_cells(one, [[1.0, 1.0]])
        seen = _queries(store)
        counted = lambda: sum("count(*) FROM cells WHERE image_id" in q for q in seen)  # noqa: E731
        assert [store.image(one).cell_count for _ in range(3)] == [21, 21, 21]
        assert store.image_cell_count(one) == 21
        assert counted() == 1
        with ProjectStore.open(path) as other:  # another connection's write: count again
            other.add_cells(one, [[2.0, 2.0], [3.0, 3.0]])
        assert store.image(one).cell_count == 23
        assert counted() == 2
        store.delete_cells(ids[:4])  # this connection's own: count again
        assert store.image(one).cell_count == 19
