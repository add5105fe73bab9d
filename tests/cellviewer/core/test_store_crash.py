"""A process killed with SIGKILL in the middle of its edits loses nothing it reported saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cellviewer.core.store import ProjectStore, UndoConflictError

REPO = Path(__file__).resolve().parents[3]

# The editor: single edits (each printed once its method returned, i.e. once committed),
# interleaved with bulk relabels of 3,000 cells so that the kill often lands mid-transaction.
EDITOR = r"""
import sys
import numpy as np
from cellviewer.core.store import ProjectStore

store = ProjectStore.open(sys.argv[1])
image = store.images()[0].id
classes = [c.id for c in store.classes()]
targets = store.query_cells(class_id=-1, order=None)
bulk = store.query_cells(class_id=classes[0], order=None)
print("ready", flush=True)
i = 0
while True:
    x, y = float(i % 900) + 0.5, float(i // 900) + 0.25
    (cell,) = store.add_cells(image, [[x, y]], classes[i % 2])
    print("add", cell, x, y, classes[i % 2], flush=True)
    store.set_labels([targets[i]], classes[1])
    print("label", targets[i], classes[1], flush=True)
    if i % 5 == 0:
        store.set_labels(bulk, classes[(i // 5) % 2])
        store.set_review_status(bulk[:1000], ["checked", "reviewed"][(i // 5) % 2])
    i += 1
"""


@pytest.mark.slow
def test_sigkill_during_edits_keeps_every_committed_edit(tmp_path):
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        image = store.add_image("/data/slide.svs", 1000, 1000)
        a = store.add_class("a")
        store.add_class("b")
        store.add_cells(image, [[i % 1000, i // 1000] for i in range(3000)], a)
        store.add_cells(image, [[i % 1000, 500 + i // 1000] for i in range(3000)])
    env = {**os.environ, "PYTHONPATH": str(REPO), "CELLVIEWER_USER": "editor"}
    proc = subprocess.Popen([sys.executable, "-c", EDITOR, str(path)], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    printed: list[list[str]] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        while len(printed) < 100:
            line = proc.stdout.readline()
            assert line, "the editor stopped before it was killed"
            printed.append(line.split())
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    with ProjectStore.open(path) as store:
        assert store.integrity_check() == "ok"
        for edit in printed:
            if edit[0] == "add":
                _, cell_id, x, y, cls = edit
                cell = store.cell(cell_id)
                assert (cell.x, cell.y, cell.class_id) == (float(x), float(y), int(cls))
                assert cell.updated_by == "editor"
            else:
                _, cell_id, cls = edit
                assert store.cell(cell_id).class_id == int(cls)
                assert store.history(cell_id)[-1].action == "label"
        # The project still works: its user undoes the killed process's last committed action
        # (the killed session has ended, so its user adopts its undo stack; nobody else may).
        with pytest.raises(UndoConflictError, match="editor made"):
            store.undo()
        store.user = "editor"
        assert store.undo()
        assert store.integrity_check() == "ok"
