"""The merge tests' small real project (Chula RBC-12 cells) and how to read its cells."""

from __future__ import annotations

import csv
from pathlib import Path

from cellviewer.core.store import ProjectStore

CHULA = Path(__file__).resolve().parents[3] / "fixtures" / "chula"
CLASSES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [160, 0], [160, 120], [0, 120], [0, 0]]]}


def make_project(path: Path, mpp: float | None = None) -> Path:
    """The crop of Chula image 10 and its 28 labelled red cells, as imported by "lab"."""
    with open(CHULA / "chula-10-crop.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with ProjectStore.create(path, "cohort") as store:
        store.user = "lab"
        ids = {name: store.add_class(name) for name in CLASSES}
        image = store.add_image(CHULA / "chula-10-crop.png", 320, 240, mpp)
        store.add_cells(image, [[float(r["x"]), float(r["y"])] for r in rows],
                        [ids[r["class_id"]] for r in rows], source="imported")
        store.add_region(image, SQUARE, "top left", "tumour")
        store.wait_for_checkpoint()
    return path


def cells(path: Path) -> dict[str, tuple]:
    """uuid -> (x, y, class name, review status) of a project's cells."""
    with ProjectStore.open(path, readonly=True) as store:
        t = store.cell_table()
        names = {c.id: c.name for c in store.classes()}
        return {u: (t["x"][i], t["y"][i], names.get(int(t["class_id"][i])),
                    t["review_status"][i]) for i, u in enumerate(t["ids"])}


def class_id(store: ProjectStore, name: str) -> int:
    cid = store.class_id(name)
    assert cid is not None
    return cid
