"""A small real project for the importer tests: two PNG images made in the test's folder, added
with the store API, and a snapshot of everything an import could write."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.store import ProjectStore

# Hypothesis keeps a cache of the source's constants in ./.hypothesis (the fuzz tests use no
# example database); keep it out of the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "cellviewer-hypothesis"))

SIZES = {"a.png": (40, 30), "b.png": (32, 24)}  # name -> (width, height)


@dataclass
class Project:
    store: ProjectStore
    folder: Path  # the images' folder
    image_ids: dict[str, int]  # image name -> id


def make_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in SIZES.items():
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(folder / name)


def open_project(folder: Path) -> Project:
    make_images(folder / "images")
    store = ProjectStore.create(folder / "p.cvproj", overwrite=True)
    ids = {name: store.add_image(folder / "images" / name, w, h)
           for name, (w, h) in SIZES.items()}
    return Project(store, folder / "images", ids)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = open_project(tmp_path)
    with p.store:
        yield p


def _snapshot(store: ProjectStore) -> tuple:
    """Everything an import writes: cells (ids and positions), classes, images, models,
    actions and the audit trail."""
    table = store.cell_table()
    return (
        store.cell_count(),
        sorted(zip(table["ids"], np.asarray(table["x"]).tolist(),
                   np.asarray(table["y"]).tolist(), strict=True)),
        [c.name for c in store.classes()],
        [im.id for im in store.images()],
        [m.id for m in store.models()],
        [(o.id, o.state) for o in store.operations(None)],
        len(store.history()),
    )


@pytest.fixture
def snapshot() -> Callable[[ProjectStore], tuple]:
    """``snapshot(store)``: compare before and after to show that an import wrote nothing."""
    return _snapshot
