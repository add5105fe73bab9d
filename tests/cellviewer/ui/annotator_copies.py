"""The annotators' tests' cohort: a small real project (the crop of Chula RBC-12 image 10 and its
28 labelled red cells, imported by "lab") and three copies of it made with the core's
``copy_for``, edited differently by ana, ben and cy: relabels both agree and disagree on, a
deletion, a deletion against an edit, a double-check. What each one said is returned, so the
tests can compute the expected figures from it independently of the app."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from cellviewer.core.merge import copy_for
from cellviewer.core.store import ProjectStore

CHULA = Path(__file__).resolve().parents[2] / "fixtures" / "chula"
CLASSES = [str(i) for i in range(12)]
#: a region over the top left of the image (its cells: the region scope of the agreement)
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [160, 0], [160, 120], [0, 120], [0, 0]]]}

#: cells (by position order) -> what ana and ben set; where they differ it is a conflict
ANA = {0: "5", 1: "6", 2: "2", 3: "7", 4: "5", 5: "6", 6: "2", 7: "7", 8: "5", 9: "6"}
BEN = {0: "5", 1: "8", 2: "2", 3: "7", 4: "6", 5: "6", 6: "2", 7: "9", 8: "5", 9: "6"}
#: cy labels a few of the same cells: three annotators there (Fleiss' kappa)
CY = {0: "5", 1: "6", 2: "3", 3: "7", 4: "5"}


@dataclass
class Cohort:
    target: Path
    copies: dict[str, Path]
    order: list[str]  # the project's cell uuids by position
    said: dict[str, dict[int, str]] = field(default_factory=dict)


def make_project(path: Path) -> Path:
    with open(CHULA / "chula-10-crop.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with ProjectStore.create(path, "cohort") as store:
        store.user = "lab"
        ids = {name: store.add_class(name) for name in CLASSES}
        image = store.add_image(CHULA / "chula-10-crop.png", 320, 240, None)
        store.add_cells(image, [[float(r["x"]), float(r["y"])] for r in rows],
                        [ids[r["class_id"]] for r in rows], source="imported")
        store.add_region(image, SQUARE, "top left", "tumour")
        store.wait_for_checkpoint()
    return path


def _relabel(store: ProjectStore, order: list[str], labels: dict[int, str]) -> None:
    for i, name in labels.items():
        cid = store.class_id(name)
        assert cid is not None
        store.set_labels([order[i]], cid)


def make_cohort(folder: Path) -> Cohort:
    """The project and the three edited copies (see the module docstring)."""
    target = make_project(folder / "cohort.cvproj")
    with ProjectStore.open(target, readonly=True) as store:
        t = store.cell_table()
        order = [u for _, _, u in sorted(zip(t["x"].tolist(), t["y"].tolist(), t["ids"],
                                             strict=True))]
    copies = {u: copy_for(target, folder / f"{u}.cvproj", u) for u in ("ana", "ben", "cy")}
    with ProjectStore.open(copies["ana"]) as s:
        s.user = "ana"
        _relabel(s, order, ANA)
        s.delete_cells([order[12]])  # ben edits it: a conflict
        s.set_review_status([order[13]], "checked")  # double-checked: pathologist's queue
        s.wait_for_checkpoint()
    with ProjectStore.open(copies["ben"]) as s:
        s.user = "ben"
        _relabel(s, order, BEN)
        s.set_labels([order[12]], s.class_id("9"))
        s.wait_for_checkpoint()
    with ProjectStore.open(copies["cy"]) as s:
        s.user = "cy"
        _relabel(s, order, CY)
        s.delete_cells([order[20]])  # one side only: deleted
        s.wait_for_checkpoint()
    return Cohort(target, copies, order, {"ana": ANA, "ben": BEN, "cy": CY})
