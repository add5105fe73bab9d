"""Exports never destroy the project: every exporter refuses the project file, its -wal/-shm,
its lock, its backups folder, another SQLite database and a folder, also through a symlink or a
relative path, with a message naming the target and why; the project then still opens intact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.export import export_cells_csv, export_summary_csv, run_export
from cellviewer.core.io.geojson import export_geojson
from cellviewer.core.project.lock import ProjectLock, lock_path_for
from cellviewer.core.store import ProjectError, ProjectStore


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "study.cvproj"
    with ProjectStore.create(path) as s:
        image = s.add_image(tmp_path / "a.png", 100, 100)
        tumour = s.add_class("tumour")
        s.add_cells(image, np.random.default_rng(1).uniform(0, 100, (10, 2)), [tumour] * 10)
    with ProjectStore.open(path) as s:
        yield s


def _cells_csv(store, target):
    return export_cells_csv(store, target)


def _summary_csv(store, target):
    return export_summary_csv(store, target)


def _geojson(store, target):
    return export_geojson(store, target, store.images()[0].id)


EXPORTERS = {"cells_csv": _cells_csv, "summary_csv": _summary_csv, "geojson": _geojson}


def _targets(project: Path) -> dict[str, tuple[Path, str]]:
    """Target -> (the path, what the message must say)."""
    backups = project.with_name(project.name + ".backups")
    backups.mkdir(exist_ok=True)
    return {
        "project": (project, "the project file"),
        "wal": (project.with_name(project.name + "-wal"), "write-ahead log"),
        "shm": (project.with_name(project.name + "-shm"), "shared-memory index"),
        "lock": (lock_path_for(project), "lock file"),
        "backup": (backups / "study-2025-03-04.cvproj", "backups folder"),
        "folder": (project.parent, "it is a folder"),
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("target", ["project", "wal", "shm", "lock", "backup", "folder"])
def test_an_export_onto_the_projects_own_files_is_refused_and_the_project_survives(
        store, exporter, target):
    project = store.path
    with ProjectLock.acquire(project, user="me"):
        path, why = _targets(project)[target]
        before = _digest(project)
        with pytest.raises(ProjectError) as info:
            EXPORTERS[exporter](store, path)
        assert type(info.value).__name__ == "ExportError"  # a ProjectError the app shows
        message = str(info.value)
        assert message.startswith(f"cannot export to {path}: ") and why in message, message
        assert _digest(project) == before
    with ProjectStore.open(project) as again:
        assert again.cell_count() == 10
    left = [p.name for p in project.parent.iterdir() if p.name.endswith(".tmp")]
    assert left == []


def test_a_symlink_a_hard_link_or_a_relative_path_to_the_project_is_caught(store, tmp_path,
                                                                          monkeypatch):
    link = tmp_path / "innocent.csv"
    link.symlink_to(store.path)
    hard = tmp_path / "hard.csv"
    os.link(store.path, hard)
    monkeypatch.chdir(tmp_path / "..")
    relative = Path(tmp_path.name) / "sub" / ".." / "study.cvproj"
    (tmp_path / "sub").mkdir()
    for target in (link, hard, relative):
        with pytest.raises(ProjectError, match="the project file"):
            export_cells_csv(store, target)
    wal_link = tmp_path / "log.csv"
    wal_link.symlink_to(store.path.with_name("study.cvproj-wal"))
    with pytest.raises(ProjectError, match="write-ahead log"):
        export_cells_csv(store, wal_link)
    with ProjectStore.open(store.path, readonly=True) as again:
        assert again.cell_count() == 10


def test_run_export_refuses_before_writing_any_file(store, tmp_path):
    """Every planned file is checked before the first one is written: no file of the export
    lands in the backups folder, not even the first."""
    backups = store.path.with_name("study.cvproj.backups")
    backups.mkdir()
    with pytest.raises(ProjectError, match="backups folder"):
        run_export(store, backups / "x.csv", ["summary", "cells"])
    assert list(backups.iterdir()) == []


def test_another_project_and_a_foreign_backups_folder_are_refused(store, tmp_path):
    from cellviewer.core.export import check_target

    other = tmp_path / "other.cvproj"
    ProjectStore.create(other).close()
    with pytest.raises(ProjectError, match="SQLite database"):
        export_cells_csv(store, other)
    elsewhere = tmp_path / "old.cvproj.backups"
    elsewhere.mkdir()
    with pytest.raises(ProjectError, match="backups folder"):
        export_summary_csv(store, elsewhere / "s.csv")
    assert check_target(tmp_path / "fine.csv", store.path) == tmp_path / "fine.csv"


def test_an_export_to_a_folder_names_the_folder_not_a_temporary_file(store, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    with pytest.raises(ProjectError) as info:
        export_cells_csv(store, folder)
    assert str(info.value) == (f"cannot export to {folder}: it is a folder; choose a file name "
                               "in it")
    assert ".tmp" not in str(info.value)
    assert list(folder.iterdir()) == [] and not any(p.name.endswith(".tmp")
                                                     for p in tmp_path.iterdir())
