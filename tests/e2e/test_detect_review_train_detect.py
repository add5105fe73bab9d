"""The study's detection loop end to end on a real blood smear (the committed Chula crop, every
red cell labelled): the classical detector proposes, a person accepts the proposals of a
region and marks it fully annotated, the region becomes the trained detector's data
(cellviewer.core.detect.training_data), a tiny detector trained on the CPU in seconds
(overfitted to that one region) finds >= 90 % of the region's accepted cells again."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from cellviewer.core.detect.params import DetectParams
from cellviewer.core.detect.project import add_to_project, area_for, run_detection
from cellviewer.core.detect.training_data import write_detector_training_regions
from cellviewer.core.io.project_import import add_images
from cellviewer.core.regions import editing as regions
from cellviewer.core.regions import proposals
from cellviewer.core.store import ProjectStore

CROP = Path(__file__).resolve().parents[1] / "fixtures" / "chula" / "chula-10-crop.png"
DIAMETER_PX = 45.0  # red cells in Chula's 40x smears


def _recovered(found: np.ndarray, truth: np.ndarray, radius: float) -> float:
    if not len(truth) or not len(found):
        return 0.0
    d = cdist(truth, found)
    rows, cols = linear_sum_assignment(d)
    return float(np.sum(d[rows, cols] <= radius)) / len(truth)


def test_detect_accept_mark_train_and_detect_again(tmp_path):
    from trainer.detect.infer import load_detector
    from trainer.detect.train import run_detector_training
    from trainer.engine.events import EventSink
    from trainer.formats.detector_config import DetectorRunConfig

    path = tmp_path / "smear.cvproj"
    with ProjectStore.create(path) as store:
        store.user = "annotator"
        (image_id,) = add_images(store, [CROP])
        uuid = regions.add_rectangle(store, image_id, 0, 0, 320, 240, "all", "tissue").uuid
        params = DetectParams(mode="whole-cell", diameter=DIAMETER_PX, unit="px")
        found = run_detection(store, image_id, area_for(store, image_id, "region",
                                                        region_uuid=uuid), params)
        added = add_to_project(store, image_id, found)
        assert added.n_added >= 15, added.message
        assert proposals.accept_in_region(store, uuid) == added.n_added
        regions.set_status(store, uuid, "annotated")
        data = write_detector_training_regions(store, tmp_path / "data")
        accepted = np.column_stack([store.cell_table([image_id])["x"],
                                    store.cell_table([image_id])["y"]])
    assert data.regions == 1 and data.cells == len(accepted)
    item = json.loads(data.path.read_text())["regions"][0]
    assert Image.open(data.path.parent / item["image"]).size == (320, 240)

    config = DetectorRunConfig(
        out_dir=str(tmp_path / "run"), regions=str(data.path), diameter_px=DIAMETER_PX,
        width=8, depth=2, epochs=6, steps_per_epoch=12, batch_size=4, crop_px=64, lr=4e-3,
        val_fraction=0.0, device="cpu", num_threads=1, seed=3)
    result = run_detector_training(config, sink=EventSink(), stop=threading.Event(),
                                   log=lambda m: None)
    assert result.status == "finished", result.error
    detector = load_detector(result.best_path, device="cpu")
    rgb = np.asarray(Image.open(CROP).convert("RGB"))
    again = detector.detect_array(rgb)
    xy = np.column_stack([again.x, again.y])
    assert _recovered(xy, accepted, radius=12.0) >= 0.9
