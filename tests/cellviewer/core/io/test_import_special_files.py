"""Files that are not regular files (a FIFO, a folder) named like an import (or like an image to
add) are refused with a message naming them, instead of blocking for ever on a FIFO that no one
writes to. Each import runs in a child process with a timeout, so a regression fails the test
instead of hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]


def _import_in_child(path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the importer in a child process with a timeout: a regression that blocks on a FIFO
    must fail the test, not hang the suite."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", CHILD, str(path), *args], env=env,
                          capture_output=True, text=True, timeout=30)


CHILD = """
import sys
from pathlib import Path
from cellviewer.core.io.geojson import read_geojson
from cellviewer.core.io.points_csv import read_points_csv
from cellviewer.core.io.project_import import add_images
from cellviewer.core.store import ProjectError, ProjectStore
path = sys.argv[1]
try:
    if path.endswith(".png"):
        with ProjectStore.create(Path(path).with_name("p.cvproj")) as store:
            add_images(store, [path])
    else:
        (read_geojson if path.endswith(".geojson") else read_points_csv)(path)
except ProjectError as e:
    print("refused:", e)
else:
    print("read")
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["cells.geojson", "points.csv", "image.png"])
def test_a_fifo_named_like_an_import_is_refused_not_waited_on(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    try:
        done = _import_in_child(fifo)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading the FIFO {fifo} blocked")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"refused: {fifo}: "), done.stdout
    assert "not a regular file (a FIFO" in done.stdout


@pytest.mark.parametrize("name", ["cells.geojson", "points.csv"])
def test_a_folder_named_like_an_import_is_refused(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    done = _import_in_child(folder)
    assert done.stdout.startswith(f"refused: {folder}: "), done.stdout
    assert "a folder" in done.stdout
