"""A large undo or redo (an import of tens of thousands of cells) runs on a worker's connection
with the project's own session: undo returns at once with the edits held, the cells go (and
come back on redo) when it is done, and the history names the user; a small one stays on the
GUI thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.cells import editing
from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.project.demo import load_class_set
from cellviewer.core.store import ProjectStore
from cellviewer.ui.main_window import MainWindow

WAIT_MS = 120_000
N_BIG = editing.BACKGROUND_FLIP_CELLS + 5_000


@pytest.fixture
def big_project(tmp_path: Path) -> Path:
    image = tmp_path / "big.png"
    Image.fromarray(np.full((2000, 2000, 3), 210, np.uint8)).save(image)
    path = tmp_path / "big.cvproj"
    rng = np.random.default_rng(0)
    with ProjectStore.create(path) as store:
        class_ids = add_classes(store, load_class_set()["classes"])
        (image_id,) = add_images(store, [image])
        store.add_cells(image_id, rng.uniform(10, 1990, (5, 2)), class_ids[:1] * 5,
                        source="imported")  # a small action under the big one
        store.add_cells(image_id, rng.uniform(10, 1990, (N_BIG, 2)),
                        rng.choice(class_ids, N_BIG).tolist(), source="imported")
    return path


def _open(qtbot, path: Path) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    assert w.open_project(path)
    w.show()
    qtbot.waitUntil(lambda: len(w.session.cells) == N_BIG + 5, timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)
    return w


def test_a_large_undo_and_redo_run_in_the_background(qtbot, big_project):
    w = _open(qtbot, big_project)
    assert editing.flip_in_background(w.session, "undo")
    assert w.undo()
    # returned before the work was done: edits wait meanwhile, and say why
    assert w._writing is not None and "undo" in w._writing
    w.select_cells([str(w.session.cells.ids[0])])
    assert w.label_selection(-1) == 0  # held: "Wait until the undo … has finished"
    assert "Wait until the undo" in w.last_error
    qtbot.waitUntil(lambda: w._writing is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(w.session.cells) == 5, timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)
    assert w.store.cell_count() == 5
    assert w.undo_action.isEnabled() and w.redo_action.isEnabled()

    # redo: also big, also in the background; then the small undo runs here at once
    assert editing.flip_in_background(w.session, "redo")
    assert w.redo() and w._writing is not None
    qtbot.waitUntil(lambda: w._writing is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(w.session.cells) == N_BIG + 5, timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)
    history = w.store.history(str(w.session.cells.ids[-1]))
    assert history[-1].user == "test-user"

    assert w.undo()  # the big one again, then the small one below it
    qtbot.waitUntil(lambda: w._writing is None, timeout=WAIT_MS)
    assert not editing.flip_in_background(w.session, "undo")
    assert w.undo() and w._writing is None  # done on the spot
    assert w.store.cell_count() == 0
    w.close()


def test_a_worker_connection_writes_as_its_lender(tmp_path: Path):
    """The worker's connection records its action under the lender's session: the lender may
    undo it at once (another session's fresh action would be refused)."""
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        (image_id,) = add_images(store, [_png(tmp_path)])
        store.user = "alice"
        worker = store.connection_for_worker()
        try:
            assert worker.user == "alice"
            worker.add_cells(image_id, [[5.0, 5.0]], [None], source="manual")
        finally:
            worker.close()
        store.external_change()
        assert store.cell_count() == 1
        assert store.undo()  # its own action: no UndoConflictError
        assert store.cell_count() == 0
        assert store.redo() and store.cell_count() == 1


def _png(folder: Path) -> Path:
    p = folder / "tile.png"
    Image.fromarray(np.full((50, 50, 3), 200, np.uint8)).save(p)
    return p
