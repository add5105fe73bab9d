"""The window and the project file (issue 14, items 4, 5 and 10): a damaged project is refused
with a way out (read-only, or restore the newest backup, the damaged file kept aside); the open
project is backed up in the background; File → Check project file… runs the full check in the
background; a read-only project says so in the title and its edits show the message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.store import ProjectStore
from cellviewer.core.store.backup import list_backups
from cellviewer.ui.common import project_files as files
from cellviewer.ui.main_window import MainWindow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "study.cvproj"
    with ProjectStore.create(path) as store:
        store.add_class("tumour")
        image = store.add_image(str(tmp_path / "missing.png"), 500, 500)
        store.add_cells(image, np.array([[10.0, 10.0], [20.0, 20.0]]))
    return path


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    yield w
    w.close()


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\x5a" * (4096 - 100)  # the schema's page
    path.write_bytes(bytes(data))


def _backed_up(window: MainWindow, qtbot, path: Path) -> Path:
    qtbot.waitUntil(lambda: bool(list_backups(path)) and window.file_care.runner.is_idle(),
                    timeout=10000)
    return list_backups(path)[0].path


def test_opening_backs_the_project_up_in_the_background(window, qtbot, project):
    assert window.open_project(project)
    backup = _backed_up(window, qtbot, project)
    assert backup.parent.name == "study.cvproj.backups"
    assert window.file_care.last_backup is not None


def test_a_damaged_project_can_be_restored_from_its_backup(window, qtbot, project,
                                                           monkeypatch):
    assert window.open_project(project)
    _backed_up(window, qtbot, project)
    window.close_project()
    _damage(project)
    damaged = project.read_bytes()
    asked = []
    monkeypatch.setattr(files, "ask_damaged_way_out",
                        lambda parent, error, backups: asked.append(str(error)) or files.RESTORE)
    assert window.open_project(project)
    assert asked and "damaged" in asked[0] and str(project) in asked[0]
    assert window.store is not None and [c.name for c in window.store.classes()] == ["tumour"]
    kept = [p for p in project.parent.iterdir() if p.name.startswith("study.cvproj.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged


def test_a_damaged_project_can_be_opened_read_only(window, qtbot, project, monkeypatch):
    data = bytearray(project.read_bytes())
    # damage the history's index only: the check at open refuses the file, and what the
    # window reads (classes, images, cells) stays readable
    import sqlite3

    conn = sqlite3.connect(project)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND "
                        "tbl_name = 'history' AND sql IS NOT NULL").fetchone()[0]
    conn.close()
    page_size = int.from_bytes(data[16:18], "big")
    start = (root - 1) * page_size
    data[start + 3:start + 5] = b"\xff\xff"
    project.write_bytes(bytes(data))
    asked = []
    monkeypatch.setattr(files, "ask_damaged_way_out",
                        lambda *a: asked.append(a) or files.READ_ONLY)
    assert window.open_project(project)
    assert asked  # it was refused first
    assert window.store is not None and window.store.read_only
    assert window.store.cell_count() == 2  # what can be read, to export
    assert "(read-only)" in window.windowTitle()
    assert window.add_cell(5.0, 5.0) is None
    assert "read-only" in window.last_error


def test_cancelling_the_way_out_keeps_the_open_project(window, qtbot, project, tmp_path,
                                                       monkeypatch):
    other = tmp_path / "other.cvproj"
    other.write_bytes(project.read_bytes())
    _damage(other)
    assert window.open_project(project)
    monkeypatch.setattr(files, "ask_damaged_way_out", lambda *a: None)
    assert not window.open_project(other)
    assert window.store is not None and window.store.path == project


def test_the_full_check_runs_in_the_background(window, qtbot, project):
    assert window.open_project(project)
    window.check_action.trigger()
    qtbot.waitUntil(lambda: window.file_care.last_check is not None, timeout=10000)
    assert window.file_care.last_check.ok and window.file_care.last_check.complete
    assert "no problem" in window.statusBar().currentMessage()


def test_a_read_only_project_says_so_and_its_edits_show_the_message(window, qtbot, project,
                                                                    make_read_only):
    make_read_only(project.parent)
    assert window.open_project(project)
    assert "(read-only)" in window.windowTitle()
    assert "Read-only" in window.statusBar().currentMessage()
    assert window.add_cell(5.0, 5.0) is None
    assert "read-only" in window.last_error
    assert window.store is not None and window.store.cell_count() == 2



def test_a_locked_project_shows_the_error_and_keeps_what_is_on_screen(window, qtbot, project):
    import sqlite3

    assert window.open_project(project)
    window.wait_idle()
    store = window.store
    assert store is not None
    store._conn.execute("PRAGMA busy_timeout = 50")  # not 10 s in a test
    before = len(window.session.cells)
    other = sqlite3.connect(project, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program writing
    try:
        assert window.add_cell(100.0, 100.0) is None
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "locked" in window.last_error and str(project) in window.last_error
    assert len(window.session.cells) == before  # nothing half-done on screen
    assert window.add_cell(100.0, 100.0) is not None  # and editing goes on
    assert store.cell_count() == 3
