"""An export leaves no temporary file behind: removed when the write fails (an OSError, an
exception, KeyboardInterrupt), and when the process is killed mid-write its temporary file is
recorded, so the next start (a project session) or the next export removes it; the target
keeps its earlier content throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.export import atomic_write, run_export
from cellviewer.core.export.atomic import ExportError, pending_dir, remove_leftovers
from cellviewer.core.project.session import ProjectSession
from cellviewer.core.store import ProjectStore

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def project(tmp_path) -> Path:
    path = tmp_path / "study.cvproj"
    with ProjectStore.create(path) as s:
        image = s.add_image(tmp_path / "a.png", 100, 100)
        tumour = s.add_class("tumour")
        s.add_cells(image, np.random.default_rng(1).uniform(0, 100, (10, 2)), [tumour] * 10)
    return path


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _records() -> list[Path]:
    folder = pending_dir()
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_a_failed_write_removes_its_temporary_file_and_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "cells.csv"
    target.write_text("old\n")
    with pytest.raises(error), atomic_write(target) as fh:
        fh.write("new, half")
        raise error()
    assert target.read_text() == "old\n"
    assert _temporaries(tmp_path) == [] and _records() == []


def test_an_os_error_becomes_an_export_error_naming_the_target(tmp_path):
    target = tmp_path / "cells.csv"
    with pytest.raises(ExportError, match=f"cannot write {target}: No space left"), \
            atomic_write(target) as fh:
        fh.write("x")
        raise OSError(28, "No space left on device")
    assert _temporaries(tmp_path) == [] and not target.exists() and _records() == []


def test_a_read_only_folder_is_an_export_error_naming_the_target(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ExportError, match="Permission denied"), \
                atomic_write(folder / "x.csv") as fh:
            fh.write("x")
    finally:
        folder.chmod(0o755)


KILLED = textwrap.dedent("""
    import sys, time
    from cellviewer.core.export import atomic, export_cells_csv
    from cellviewer.core.store import ProjectStore

    def pause(step):
        if step == "written":
            print("written", flush=True)
            time.sleep(60)  # killed here, the content in its temporary file

    atomic._test_pause = pause
    with ProjectStore.open(sys.argv[1], readonly=True) as store:
        export_cells_csv(store, sys.argv[2])
""")


def _kill_mid_write(project: Path, target: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(project), str(target)],
                             stdout=subprocess.PIPE, text=True, cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert child.stdout.readline().strip() == "written"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_the_temporary_file_of_an_export_killed_mid_write_is_removed_at_the_next_start(
        project, tmp_path):
    target = tmp_path / "cells.csv"
    target.write_text("old\n")
    _kill_mid_write(project, target)
    left = _temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(".cells.csv.")
    assert len(_records()) == 1
    assert target.read_text() == "old\n"
    ProjectSession()  # the app's next launch
    assert _temporaries(tmp_path) == [] and _records() == []
    assert target.read_text() == "old\n"


def test_the_next_export_removes_them_too(project, tmp_path):
    _kill_mid_write(project, tmp_path / "first.csv")
    assert len(_temporaries(tmp_path)) == 1
    with ProjectStore.open(project, readonly=True) as store:
        run_export(store, tmp_path / "second.csv", ["cells"])
    assert _temporaries(tmp_path) == [] and _records() == []
    assert not (tmp_path / "first.csv").exists() and (tmp_path / "second.csv").exists()


def test_the_cleanup_leaves_the_temporary_file_of_a_running_export_alone(project, tmp_path):
    _kill_mid_write(project, tmp_path / "killed.csv")
    (killed,) = _temporaries(tmp_path)
    with atomic_write(tmp_path / "live.csv") as fh:  # this process's export, running now
        fh.write("x")
        removed = remove_leftovers()
        assert [p.name for p in removed] == [killed]
        (live,) = _temporaries(tmp_path)
        assert live.startswith(".live.csv.") and len(_records()) == 1
    assert (tmp_path / "live.csv").read_text() == "x"
    assert _temporaries(tmp_path) == [] and _records() == []
