"""The session's open path with damaged and read-only project files (issue 14, items 4 and 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellviewer.core.cells import editing
from cellviewer.core.cells.editing import EditError
from cellviewer.core.project.lock import lock_path_for
from cellviewer.core.project.session import ProjectSession
from cellviewer.core.store import ProjectError, ProjectStore, records


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\x5a" * (4096 - 100)  # the schema's page: unreadable
    path.write_bytes(bytes(data))


def test_a_damaged_project_is_refused_and_the_open_one_stays(small_project, tmp_path):
    good = tmp_path / "good.cvproj"
    ProjectStore.create(good).close()
    damaged = tmp_path / "damaged.cvproj"
    damaged.write_bytes(small_project.read_bytes())
    _damage(damaged)
    session = ProjectSession()
    session.open(good)
    with pytest.raises(ProjectError, match="damaged") as caught:
        session.open(damaged)
    assert isinstance(caught.value, records.ProjectDamagedError)
    assert str(damaged) in str(caught.value)
    assert session.store is not None and session.store.path == good
    assert not lock_path_for(damaged).exists()  # its lock was given back
    assert not Path(f"{damaged}-wal").exists() and not Path(f"{damaged}-shm").exists()
    session.close()


def test_a_project_in_a_read_only_folder_opens_read_only_without_a_lock(small_project,
                                                                        make_read_only):
    make_read_only(small_project.parent)
    session = ProjectSession()
    store = session.open(small_project)
    assert store is not None and session.read_only
    assert "read-only" in session.read_only_reason
    assert session.lock is not None and not session.lock.held  # no lock file can be made
    assert "lock" in session.lock.reason
    session.set_image(store.images()[0].id)
    with pytest.raises(EditError, match="read-only"):
        editing.add(session, [[10.0, 10.0]])
    session.close()


def test_opening_read_only_on_purpose_takes_no_lock_and_refuses_edits(small_project):
    session = ProjectSession()
    store = session.open(small_project, read_only=True)
    assert store is not None and session.read_only and session.lock is None
    assert not lock_path_for(small_project).exists()
    with pytest.raises(records.ProjectReadOnlyError, match=str(small_project)):
        store.add_class("x")
    session.close()


def test_a_read_only_file_opens_read_only_and_gives_its_lock_back(small_project,
                                                                 make_read_only):
    make_read_only(small_project)
    session = ProjectSession()
    session.open(small_project)
    assert session.read_only and small_project.name in session.read_only_reason
    assert session.lock is None and not lock_path_for(small_project).exists()
    session.close()
