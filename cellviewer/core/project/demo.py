"""The bundled demo project: real, freely licensed images with labelled cells.

``resources/demo/points.csv`` lists ``image,x,y,class`` (image relative to the demo folder,
level-0 pixels) for 40 Chula RBC-12 blood-smear images (MIT); ``slides/`` holds the CC0
CMU-1-Small-Region Aperio slide. See ``packaging/make_demo.py`` for how it was made.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from cellviewer.paths import class_sets_dir, demo_dir

DEMO_CLASS_SET = "chula-rbc-12.json"


@dataclass(frozen=True)
class DemoPoint:
    image: str
    x: float
    y: float
    label: str


def demo_points(folder: Path | None = None) -> list[DemoPoint]:
    """The demo's labelled cell centres, read with the stdlib (no pandas on start-up)."""
    folder = folder or demo_dir()
    with open(folder / "points.csv", newline="") as fh:
        return [
            DemoPoint(r["image"], float(r["x"]), float(r["y"]), r["class"])
            for r in csv.DictReader(fh)
        ]


def demo_images(folder: Path | None = None) -> list[Path]:
    """Every image of the demo: the labelled tiles, then the whole-slide image(s)."""
    folder = folder or demo_dir()
    tiles = sorted((folder / "images").glob("*.jpg"), key=lambda p: int(p.stem))
    slides = sorted((folder / "slides").glob("*.svs"))
    return tiles + slides


def load_class_set(name: str = DEMO_CLASS_SET) -> dict:
    """A default class set from ``resources/classes`` (name, colour, key per class)."""
    with open(class_sets_dir() / name) as fh:
        return json.load(fh)


DEMO_MODEL_NAME = "Demo CNN"  # the study's CNN, trained on the demo's own cells


def demo_models(folder: Path | None = None) -> list[Path]:
    """The trained models bundled with the demo (``models/*.cvmodel``; see
    ``packaging/make_demo_model.py``), so that a first run can predict before any training."""
    folder = folder or demo_dir()
    return sorted((folder / "models").glob("*.cvmodel"))


def missing_demo_models(store, folder: Path | None = None) -> list[Path]:
    """The bundled demo models the project does not list yet (matched by file path)."""
    known = {str(Path(m.path).resolve()) for m in store.models() if m.path}
    return [p for p in demo_models(folder) if str(p.resolve()) not in known]


def register_demo_models(store, folder: Path | None = None) -> list[int]:
    """Add the bundled demo models the project does not list yet; returns the new model ids.
    Reads only each file's header (no torch)."""
    from trainer.formats.model_header import read_model_header

    added = []
    for path in missing_demo_models(store, folder):
        meta = read_model_header(path)
        record = {"final": {"metrics": meta.get("metrics", {})}, "demo": meta.get("demo", True),
                  "fov_px": meta.get("fov_px", 40)}
        added.append(store.add_model(DEMO_MODEL_NAME, str(path.resolve()), meta["arch"],
                                     meta["classes"], record))
    return added
