"""Write ``tests/fixtures/project-v<N>.cvproj``: a small project made by the code of schema
version N, kept so that every later schema change is tested by migrating it (see
``tests/cellviewer/core/test_store_migration.py`` and ``../shared/design/measuring.md``).

It is made from the demo: 3 of its images (paths relative to the fixture's folder would not
resolve, so they are stored as plain names; migration never opens images), its classes, a few
hundred labelled cells, label corrections and review steps (history), one undone action,
a model with predictions for some cells; from version 3 on also a region (marked annotated) and
three proposed cells of one detection run, one of them accepted. Run once per schema version,
before changing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cellviewer.core.project.demo import demo_images, demo_points, load_class_set
from cellviewer.core.store import SCHEMA_VERSION, ProjectStore


def main() -> int:
    out = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"project-v{SCHEMA_VERSION}.cvproj"
    if path.exists():
        path.unlink()
    rng = np.random.default_rng(0)
    with ProjectStore.create(path, "schema fixture") as store:
        store.user = "fixture-maker"
        classes = load_class_set()["classes"]
        ids = {}
        for c in classes:
            ids[c["name"]] = store.add_class(c["name"], c.get("color"), c.get("key"))
        points = demo_points()
        images = [p for p in demo_images() if p.suffix.lower() == ".jpg"][:3]
        for image in images:
            image_id = store.add_image(image.name, 640, 480, mpp=0.25, fingerprint="fixture")
            pts = [p for p in points if Path(p.image).name == image.name]
            xy = np.array([[p.x, p.y] for p in pts])
            cls = [ids.get(p.label) for p in pts]
            store.add_cells(image_id, xy, cls, source="imported",
                            metadata=[{"split": "train"}] * len(pts))
        cells = store.cell_arrays(1)
        some = list(cells.ids[:10])
        store.set_labels(some[:5], ids[classes[0]["name"]], source="corrected")
        store.set_review_status(some[5:], "checked")
        store.move_cell(some[0], float(cells.xy[0, 0]) + 2, float(cells.xy[0, 1]))
        if SCHEMA_VERSION >= 3:  # regions and proposals (issue 15)
            square = {"type": "Polygon",
                      "coordinates": [[[0, 0], [320, 0], [320, 240], [0, 240], [0, 0]]]}
            region = store.add_region(1, square, "top left", "tumour")
            store.update_region(region, status="annotated")
            run = store.add_detection_run(2, "fixture", {"sigma_px": 3})
            store.add_cells(2, [[10.5, 20.5], [30.5, 40.5], [50.5, 60.5]], source="detector",
                            proposed=True, scores=[0.9, 0.8, 0.7], run_id=run)
            proposals = store.cell_table([2])
            store.accept_proposals([proposals["ids"][-1]])
        store.delete_cells(some[9:])
        store.undo()  # the delete: an undone action stays on the redo stack
        names = [c["name"] for c in classes]
        model_id = store.add_model("fixture model", None, "cnn", names, meta={"fov_px": 40})
        probs = rng.dirichlet(np.ones(len(names)), size=len(cells)).astype(np.float32)
        store.put_predictions(model_id, list(cells.ids), probs)
        store.wait_for_checkpoint()
    for side in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        side.unlink(missing_ok=True)
    print(path, path.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
