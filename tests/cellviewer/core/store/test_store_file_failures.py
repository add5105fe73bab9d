"""Store failures become the project's own errors, naming the file and the cause (issue 14,
items 5 and 10): read-only media, a database locked by another program, a full disk; and the
integrity check on demand and its time budget at open."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.project.lock import LockOwner, ProjectLock, lock_path_for
from cellviewer.core.store import ProjectError, ProjectStore, records


def _side_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(("-wal", "-shm")))


# ---------------------------------------------------------------------- read-only media

def test_a_project_in_a_read_only_folder_opens_read_only(small_project, make_read_only):
    make_read_only(small_project.parent)
    with ProjectStore.open(small_project) as store:  # was: "not a CellViewer project"
        assert store.read_only and store.readonly
        assert "read-only" in store.read_only_reason and "folder" in store.read_only_reason
        assert len(store.images()) == 2 and store.cell_count() == 240
        with ProjectStore.open(small_project, readonly=True) as snapshot:  # a worker's
            assert snapshot.cell_count() == 240
        with pytest.raises(ProjectError, match="read-only") as caught:
            store.add_class("new")
        assert isinstance(caught.value, records.ProjectReadOnlyError)
        assert str(small_project) in str(caught.value)
    assert _side_files(small_project.parent) == []


def test_a_read_only_file_opens_read_only_and_refuses_edits(small_project, make_read_only):
    make_read_only(small_project)
    before = small_project.read_bytes()
    with ProjectStore.open(small_project) as store:
        assert store.read_only
        assert small_project.name in store.read_only_reason
        image = store.images()[0].id
        with pytest.raises(ProjectError, match="read-only") as caught:
            store.add_cells(image, [[5.0, 5.0]])  # was: sqlite3.OperationalError at this edit
        assert isinstance(caught.value, records.ProjectReadOnlyError)
        assert str(small_project) in str(caught.value)
        assert store.cell_count() == 240
    assert small_project.read_bytes() == before
    assert _side_files(small_project.parent) == []


def test_opening_read_only_on_purpose_refuses_edits_and_leaves_no_side_files(small_project):
    with ProjectStore.open(small_project, readonly=True) as store:
        assert store.read_only and store.read_only_reason == "opened read-only"
        with pytest.raises(records.ProjectReadOnlyError, match="read-only"):
            store.set_name("other")
    assert _side_files(small_project.parent) == []


def test_a_worker_snapshot_beside_the_open_project_keeps_its_side_files(small_project):
    """A read-only connection beside the writer must never remove the writer's log."""
    with ProjectStore.open(small_project) as writer:
        writer.add_class("kept")
        with ProjectStore.open(small_project, readonly=True) as reader:
            assert "kept" in [c.name for c in reader.classes()]
        writer.add_class("also kept")
    with ProjectStore.open(small_project) as again:
        assert {"kept", "also kept"} <= {c.name for c in again.classes()}


# ---------------------------------------------------------------------- locked, full

def test_a_database_locked_by_another_program_names_the_file_and_the_lock_holder(small_project):
    # Another CellViewer (a live process of its own) holds the project's lock as "ana".
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = LockOwner(pid=holder.pid, host=socket.gethostname(), user="ana", app="CellViewer",
                      started_at="2026-01-01T00:00:00Z")
    lock_path_for(small_project).write_bytes(owner.to_bytes())
    try:
        with ProjectStore.open(small_project) as store:
            store._conn.execute("PRAGMA busy_timeout = 50")  # not 10 s in a test
            other = sqlite3.connect(small_project, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another program writing
            try:
                with pytest.raises(ProjectError, match="locked") as caught:
                    store.add_class("blocked")  # was: sqlite3.OperationalError
            finally:
                other.execute("ROLLBACK")
                other.close()
            error = caught.value
            assert isinstance(error, records.ProjectBusyError)
            assert str(small_project) in str(error) and "ana" in str(error)
            assert "ana" in error.holder and str(holder.pid) in error.holder
            store.add_class("after")  # the store still works once the other let go
            assert "after" in [c.name for c in store.classes()]
    finally:
        holder.kill()
        holder.wait()
        lock_path_for(small_project).unlink()


def test_a_locked_database_does_not_name_this_app_as_the_one_blocking_it(small_project):
    lock = ProjectLock.acquire(small_project, user="me")
    try:
        with ProjectStore.open(small_project) as store:
            store._conn.execute("PRAGMA busy_timeout = 50")
            other = sqlite3.connect(small_project, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(records.ProjectBusyError) as caught:
                    store.set_name("blocked")
            finally:
                other.execute("ROLLBACK")
                other.close()
        assert caught.value.holder == "" and "another program" in str(caught.value)
    finally:
        lock.release()


def test_a_full_disk_is_reported_and_nothing_is_half_saved(small_project):
    with ProjectStore.open(small_project) as store:
        image = store.images()[0].id
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        xy = np.random.default_rng(1).uniform(0, 2000, (5000, 2))
        with pytest.raises(ProjectError, match="disk is full") as caught:
            store.add_cells(image, xy)  # was: sqlite3.OperationalError
        assert isinstance(caught.value, records.ProjectDiskFullError)
        assert str(small_project) in str(caught.value)
        assert store.cell_count() == 240  # nothing of the failed edit
        store._conn.execute(f"PRAGMA max_page_count = {pages * 100}")  # space again
        store.add_cells(image, xy)
        assert store.cell_count() == 5240
    with ProjectStore.open(small_project) as again:
        assert again.integrity_check() == "ok"


def test_the_errors_survive_pickling_for_worker_processes(small_project):
    import pickle

    for error in (records.ProjectDamagedError(small_project, "damaged"),
                  records.ProjectBusyError(small_project, "locked", "ana")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


# ---------------------------------------------------------------------- checks

def test_the_full_check_on_demand_runs_on_its_own_connection(small_project):
    from cellviewer.core.store.integrity import check_project

    with ProjectStore.open(small_project) as store:
        assert store.open_check is not None and store.open_check.ok
        result = check_project(small_project)  # beside the open store (a worker would)
        assert result.ok and result.complete and result.kind == "integrity"
    stopped = check_project(small_project, should_stop=lambda: True)
    assert not stopped.complete


def test_the_check_at_open_is_bounded_by_its_budget(tmp_path):
    path = tmp_path / "bigger.cvproj"
    with ProjectStore.create(path) as store:
        image = store.add_image("/data/a.png", 50_000, 50_000)
        store.add_cells(image, np.random.default_rng(2).uniform(0, 50_000, (20_000, 2)))
    with ProjectStore.open(path, check_budget_s=0.0) as store:  # past the budget at once
        assert store.open_check is not None
        assert not store.open_check.complete and "stopped" in store.open_check.summary
        assert store.cell_count() == 20_000  # the project opened nevertheless
