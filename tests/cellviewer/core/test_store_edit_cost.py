"""An edit of a few cells costs work in proportion to those cells, not to the project.

Counted in SQLite virtual-machine steps (a progress handler), not in seconds, so the test holds
on a loaded machine. Before the edits' joins were pinned, the planner of a project with
statistics (``PRAGMA optimize`` writes them at close) scanned every cell of the project (or
built a Bloom filter over them) to relabel one, and labelling 1,000 cells of 100,000 blocked the
GUI thread 60-90 ms.
"""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core.store import ProjectStore

N_CELLS = 20_000


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("cost") / "p.cvproj"
    rng = np.random.default_rng(3)
    with ProjectStore.create(path) as store:
        image = store.add_image(path.parent / "a.png", 4000, 4000)
        classes = [store.add_class(f"c{i}") for i in range(5)]
        store.add_cells(image, rng.uniform(0, 4000, (N_CELLS, 2)),
                        class_ids=[classes[i] for i in rng.integers(0, 5, N_CELLS)])
    with ProjectStore.open(path) as store:  # statistics, as a project used for a while has
        store._conn.execute("ANALYZE")
    return path


def _steps(store: ProjectStore, action) -> int:
    """SQLite VM instructions spent by ``action`` (counted in blocks of 100)."""
    count = [0]

    def tick() -> int:
        count[0] += 100
        return 0

    store._conn.set_progress_handler(tick, 100)
    try:
        action()
    finally:
        store._conn.set_progress_handler(None, 100)
    return count[0]


@pytest.mark.parametrize("by", ["uuid", "row"])
def test_labelling_ten_cells_does_not_touch_the_other_cells(project, by):
    with ProjectStore.open(project) as store:
        image = store.images()[0].id
        arrays = store.cell_arrays(image)
        pick = np.random.default_rng(5).choice(len(arrays.rows), 10, replace=False)
        ids = arrays.rows[pick] if by == "row" else [arrays.ids[i] for i in pick]
        new_class = store.classes()[0].id
        steps = {
            "label": _steps(store, lambda: store.set_labels(ids, new_class)),
            "review": _steps(store, lambda: store.set_review_status(ids, "checked")),
            "undo": _steps(store, store.undo),
            "delete": _steps(store, lambda: store.delete_cells(ids)),
        }
    # a scan of the project's cells alone is > N_CELLS steps; ten cells need a few thousand
    assert all(s < N_CELLS // 2 for s in steps.values()), steps


def test_cells_that_lie_together_get_neighbouring_keys(project):
    """Keys follow reading order of 256-px tiles, whatever order the cells were given in, so
    a rubber band's cells lie in a few blocks of consecutive keys (a few database pages), not
    one block per cell."""
    with ProjectStore.open(project) as store:
        arrays = store.cell_arrays(store.images()[0].id)
    inside = (arrays.xy[:, 0] < 300) & (arrays.xy[:, 1] < 300)
    blocks = len(np.unique(arrays.rows[inside] // 40))  # ~40 cells to a page of the table
    # 109 cells in 2 x 2 tiles of ~80 cells: ~12 blocks (in the given, random, order: ~100)
    assert inside.sum() > 50 and blocks <= 20, (inside.sum(), blocks)


def test_spatial_order_is_tiles_then_y_then_x():
    from cellviewer.core.store.cells import spatial_order

    xy = np.array([[300.0, 10.0], [10.0, 300.0], [20.0, 5.0], [5.0, 20.0], [10.0, 5.0]])
    assert spatial_order(xy).tolist() == [4, 2, 3, 0, 1]
    assert spatial_order(xy[:1]).tolist() == [0]


def _pages_written(store: ProjectStore, action) -> int:
    """Pages ``action`` appended to the write-ahead log (its frames), with the background
    checkpointer stopped so that nothing empties the log meanwhile."""
    checkpointer, store._checkpointer = store._checkpointer, None
    if checkpointer is not None:
        checkpointer.close()
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = store.path.with_name(store.path.name + "-wal")
    assert wal.stat().st_size == 0
    action()
    page = store._conn.execute("PRAGMA page_size").fetchone()[0]
    return wal.stat().st_size // (page + 24)  # a frame: a 24-byte header and the page


def test_labelling_a_region_of_1000_cells_writes_pages_for_those_cells_only(project):
    """The cells of a region sit together in every index an edit writes: their rows (stored
    in tile order), their ids (handed out in that order) and their history entries (whose
    ids start with the time). With random ids the index of history by cell and the one of
    history ids took one page per cell: labelling 1,000 cells of 100,000 wrote 1,700 pages and
    blocked the GUI thread 80 ms; now about 190."""
    with ProjectStore.open(project) as store:
        image = store.images()[0].id
        arrays = store.cell_arrays(image)
        xy = store.image_columns(image).xy
        inside = (xy[:, 0] < 900) & (xy[:, 1] < 900)  # a square of about 1,000 cells
        ids = [arrays.ids[i] for i in np.flatnonzero(inside)]
        assert 800 < len(ids) < 1200
        target = store.classes()[1].id
        pages = _pages_written(store, lambda: store.set_labels(ids, target))
        assert store.classes()[1].id == target and pages > 0
        # 1,000 history rows of ~150 bytes and 1,000 undo snapshots fill ~80 pages; each index
        # a few more. Random ids: > 900 pages here.
        assert pages < 300, pages
