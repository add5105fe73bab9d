"""Automatic backups and restoring one (issue 14, item 4's way out)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cellviewer.core.store import ProjectStore, records
from cellviewer.core.store.backup import (
    BackupSchedule,
    backup_folder,
    fallback_backup_folder,
    list_backups,
    make_backup,
    restore_backup,
)


def _class_names(path: Path) -> list[str]:
    with ProjectStore.open(path) as store:
        return [c.name for c in store.classes()]


def test_a_backup_is_a_sound_copy_made_beside_the_open_project(small_project):
    with ProjectStore.open(small_project) as store:
        store.add_class("in the log")  # still in the -wal: the backup must have it
        result = make_backup(small_project)
        assert result.backup is not None and result.backup.parent == backup_folder(small_project)
        assert result.backup.parent.name == "small.cvproj.backups"
        store.add_class("after the backup")
    assert not Path(f"{result.backup}-wal").exists()
    conn = sqlite3.connect(f"{result.backup.as_uri()}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    names = [r[0] for r in conn.execute("SELECT name FROM classes")]
    conn.close()
    assert "in the log" in names and "after the backup" not in names


def test_only_the_last_three_backups_are_kept_and_unchanged_projects_are_not_copied(
        small_project):
    made = []
    with ProjectStore.open(small_project) as store:
        for k in range(5):
            store.add_class(f"class {k}")
            made.append(make_backup(small_project).backup)
        again = make_backup(small_project)
    assert again.backup is None and "not changed" in again.message
    kept = [b.path for b in list_backups(small_project)]
    assert kept == made[:1:-1]  # the newest three, newest first
    assert all(p is not None for p in made)


def test_a_damaged_project_is_not_backed_up_and_the_good_backups_stay(small_project):
    good = make_backup(small_project).backup
    conn = sqlite3.connect(small_project)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'cells'").fetchone()[0]
    conn.close()
    data = bytearray(small_project.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    start = (root - 1) * page_size
    data[start + 3:start + 5] = b"\xff\xff"  # the cells table's page claims 65535 cells
    small_project.write_bytes(bytes(data))
    with pytest.raises(records.ProjectDamagedError, match="damaged") as caught:
        make_backup(small_project, force=True)
    assert str(small_project) in str(caught.value)
    assert [b.path for b in list_backups(small_project)] == [good]


def test_backups_above_the_size_limit_are_skipped_with_a_message(small_project):
    result = make_backup(small_project, max_bytes=1000)
    assert result.backup is None and "above the backup limit" in result.message
    assert list_backups(small_project) == []


def test_a_read_only_folder_backs_up_into_the_data_folder(small_project, make_read_only):
    make_read_only(small_project.parent)
    result = make_backup(small_project)
    assert result.backup is not None
    assert result.backup.parent == fallback_backup_folder(small_project)
    assert [b.path for b in list_backups(small_project)] == [result.backup]


def test_restoring_a_backup_keeps_the_damaged_file_aside(small_project):
    good = make_backup(small_project).backup
    assert good is not None
    damaged_bytes = b"SQLite format 3\x00" + b"\x00" * 4000
    small_project.write_bytes(damaged_bytes)
    with pytest.raises(records.ProjectDamagedError):
        ProjectStore.open(small_project)
    aside = restore_backup(small_project, good)
    assert aside is not None and aside.read_bytes() == damaged_bytes  # nothing deleted
    assert aside.name.startswith("small.cvproj.damaged-")
    assert "tumour" in _class_names(small_project)
    assert good.exists()  # the backup stays a backup


def test_a_damaged_backup_is_not_restored(small_project, tmp_path):
    bad = tmp_path / "bad.cvproj"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x01" * 4000)
    before = small_project.read_bytes()
    with pytest.raises(records.ProjectError) as caught:
        restore_backup(small_project, bad)
    assert str(bad) in str(caught.value)
    assert small_project.read_bytes() == before


def test_the_schedule_backs_up_at_open_and_hourly_while_edits_happen():
    now = [0.0]
    schedule = BackupSchedule(interval_s=3600, clock=lambda: now[0])
    assert schedule.opened()
    schedule.started()
    now[0] = 100
    assert not schedule.edited()
    now[0] = 3700
    assert schedule.edited()
    schedule.started()
    now[0] = 3800
    assert not schedule.edited()
