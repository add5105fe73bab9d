"""A small real project for the export tests: three PNG images, two of them of the same file name
in two folders (``sub1/a.png``, ``sub2/a.png``), cells with every label source and review status,
a model (a real file, for its SHA-256) with predictions for some cells, and cells with an
outline, a plane, a name and numeric and text metadata, as the importer keeps them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellviewer.core.store import ProjectStore

IMAGES = ("sub1/a.png", "sub2/a.png", "b.png")
SIZE = (80, 60)
OUTLINE = [[10.0, 10.0], [20.0, 10.0], [20.0, 22.0], [10.0, 22.0], [10.0, 10.0]]


@dataclass
class Study:
    store: ProjectStore
    folder: Path  # the images' folder
    images: dict[str, int]  # relative name -> id
    ids: dict[str, str]  # what a cell is there for -> its id
    model_id: int
    model_file: Path


def image_files(folder: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    out = []
    for name in IMAGES:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


def new_store(path: Path, images: list[Path] = ()) -> ProjectStore:
    from cellviewer.core.io.project_import import image_info

    store = ProjectStore.create(path, overwrite=True)
    store.user = "tester"
    for p in images:
        w, h, _, fp = image_info(p)
        store.add_image(p, w, h, mpp=0.5, fingerprint=fp)
    return store


def cells_of(store: ProjectStore) -> list[tuple]:
    """Every cell as (id, image path tail, x, y, label, label source, review status)."""
    names = {c.id: c.name for c in store.classes()}
    table = store.cell_table()
    tails = {im.id: "/".join(im.path.parts[-2:]) for im in store.images()}
    return sorted(
        (table["ids"][i], tails[int(table["image_id"][i])], float(table["x"][i]),
         float(table["y"][i]), names.get(int(table["class_id"][i])),
         table["label_source"][i], table["review_status"][i])
        for i in range(len(table["ids"])))


def predictions_of(store: ProjectStore) -> dict[str, tuple]:
    """Cell id -> its predicted class and probabilities, for every model."""
    out: dict[str, tuple] = {}
    table = store.cell_table()
    for m in store.models():
        pred = store.predictions(m.id, table["rows"])
        for i, cell_id in enumerate(table["ids"]):
            if pred.predicted[i] >= 0:
                out[cell_id] = (pred.classes[pred.predicted[i]],
                                tuple(round(float(p), 6) for p in pred.probs[i]))
    return out


@pytest.fixture
def study(tmp_path) -> Study:
    folder = tmp_path / "images"
    files = image_files(folder)
    (tmp_path / "study").mkdir()
    store = new_store(tmp_path / "study" / "study.cvproj", files)
    images = {name: store.image_id_for_path(folder / name) for name in IMAGES}
    tumour = store.add_class("Tumour", "#c81e1e")
    stroma = store.add_class("Stroma", "#1e64c8")
    a1, a2, b = images["sub1/a.png"], images["sub2/a.png"], images["b.png"]
    ids: dict[str, str] = {}
    (ids["manual"], ids["corrected"], ids["unlabelled"], ids["unlabelled-no-prediction"]) = \
        store.add_cells(a1, [[5.5, 6.25], [30, 40], [50, 20], [70, 50]],
                        [tumour, stroma, None, None],
                        source=["manual", "corrected", "manual", "manual"],
                        review_status=["checked", "reviewed", "unreviewed", "unreviewed"])
    (ids["outline"],) = store.add_cells(
        a2, [[15.0, 16.5]], [tumour], source="imported", review_status="annotated",
        metadata=[{"Nucleus: Area": 120.0, "plane": {"c": -1, "z": 2, "t": 0},
                   "name": "nucleus 7", "stain": "H&E", "missing": math.nan}],
        outlines=[json.dumps({"type": "Polygon", "coordinates": [OUTLINE]})])
    (ids["same-name"], ids["accepted"]) = store.add_cells(
        a2, [[40, 30], [60, 10]], [stroma, tumour], source=["manual", "model-accepted"],
        review_status=["annotated", "checked"])
    (ids["other-image"],) = store.add_cells(b, [[1, 2]], [stroma], source="manual",
                                            review_status="reviewed")
    model_file = tmp_path / "models" / "cnn.cvmodel"
    model_file.parent.mkdir()
    model_file.write_bytes(b"not a real model, but a real file: " + bytes(range(256)))
    model_id = store.add_model("cnn-small", model_file, "cnn", ["Tumour", "Stroma", "Other"])
    predicted = [ids["manual"], ids["unlabelled"], ids["outline"], ids["same-name"]]
    store.put_predictions(model_id, predicted, np.array(
        [[0.8, 0.15, 0.05], [0.25, 0.7, 0.05], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7]], np.float32))
    yield Study(store, folder, images, ids, model_id, model_file)
    store.close()
