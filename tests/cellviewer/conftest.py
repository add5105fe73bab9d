"""Shared by the store's file-failure tests: a small real project made with the store API, and a
way to make a file or folder truly read-only even for root.

Read-only media for root: root ignores permission bits (``chmod 555`` stops nobody), and a
read-only bind or tmpfs mount needs privileges a test should not use. An *immutable* file or
folder (``chattr +i``, ext4/xfs/btrfs, needs CAP_LINUX_IMMUTABLE, which root has) refuses writes
to everyone, root included, and ``os.access(..., W_OK)`` reports it as not writable: the same
answers as a write-protected medium. So: ``chmod`` for a normal user, ``chattr +i`` for root,
and a skip where neither can make it read-only (a filesystem without the attribute).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from cellviewer.core.store import ProjectStore


def build_small_project(path: Path) -> Path:
    """A project with every kind of row: classes, two images, cells with labels and reviews,
    a model with predictions, history and undo steps."""
    rng = np.random.default_rng(7)
    with ProjectStore.create(path, name="small") as store:
        tumour, lymph = store.add_class("tumour"), store.add_class("lymphocyte")
        ids = []
        for k in range(2):
            image = store.add_image(f"/data/slide-{k}.png", 2000, 2000, mpp=0.25)
            ids = store.add_cells(image, rng.uniform(0, 2000, (120, 2)),
                                  [tumour] * 60 + [lymph] * 60)
            store.set_labels(ids[:15], lymph)
            store.set_review_status(ids[:8], "checked")
        model = store.add_model("resnet", None, "resnet18", ["tumour", "lymphocyte"])
        store.put_predictions(model, ids[:40], np.full((40, 2), 0.5, np.float32))
        store.undo()
    return path


@pytest.fixture(scope="session")
def small_project_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small, sound, checkpointed project file (made once per test session)."""
    path = build_small_project(tmp_path_factory.mktemp("small") / "small.cvproj")
    assert not Path(f"{path}-wal").exists()
    return path.read_bytes()


@pytest.fixture
def small_project(tmp_path: Path, small_project_bytes: bytes) -> Path:
    path = tmp_path / "project" / "small.cvproj"
    path.parent.mkdir()
    path.write_bytes(small_project_bytes)
    return path


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], None]]:
    """``make_read_only(path)``: the file or folder refuses writes (see the module docstring);
    undone after the test."""
    undo: list[Callable[[], None]] = []

    def protect(path: Path) -> None:
        if os.geteuid() != 0:
            mode = path.stat().st_mode
            path.chmod(0o555 if path.is_dir() else 0o444)
            undo.append(lambda: path.chmod(mode))
        else:
            chattr = shutil.which("chattr")
            if chattr is None or subprocess.run([chattr, "+i", str(path)],
                                                capture_output=True).returncode != 0:
                pytest.skip("running as root on a filesystem without chattr +i: cannot make "
                            "anything read-only")
            undo.append(lambda: subprocess.run([chattr, "-i", str(path)], check=False))
        if os.access(path, os.W_OK):
            pytest.skip(f"{path} still reads as writable")

    yield protect
    for step in reversed(undo):
        step()

