"""The detection dialog with a trained detector: a tiny detector trained in the test (synthetic
blobs, CPU, seconds), offered as one of the project's models or chosen as a file, finds the
blobs of the project's image as proposals in one undoable step; a classifier file chosen as a
detector is refused by name; with "classify with the active model" a tiny random-weight
classifier then predicts every new proposal (predictions stored for the model, the proposals
still proposals), and a detector chosen as the classifier is refused by name."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from cellviewer.core.io.project_import import add_classes, add_images
from cellviewer.core.predict.model_info import read_model_info
from cellviewer.core.store import ProjectStore
from cellviewer.ui.main_window import MainWindow

WAIT_MS = 120_000
DIAMETER = 12.0
SIZE = (160, 160)
CLASSES = ["tumour", "immune"]


def _blobs(size, n, seed) -> tuple[np.ndarray, np.ndarray]:
    """(image (h, w, 3) uint8, centres (n, 2)): dark round cells on a light background."""
    rng = np.random.default_rng(seed)
    h, w = size
    pts: list[np.ndarray] = []
    while len(pts) < n:
        p = rng.uniform(DIAMETER, [w - DIAMETER, h - DIAMETER])
        if all(np.hypot(*(p - q)) > 1.8 * DIAMETER for q in pts):
            pts.append(p)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w, 3), 225.0)
    for x, y in pts:
        m = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (DIAMETER / 3.5) ** 2))
        img -= m[..., None] * np.array([120.0, 150.0, 60.0])
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), np.array(pts)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny detector trained on blob images (the project's image among them) and a tiny
    random-weight classifier of the project's classes."""
    import torch

    from trainer.detect.train import run_detector_training
    from trainer.engine.events import EventSink
    from trainer.engine.modelfile import save_model_file
    from trainer.formats.detector_config import DetectorRunConfig
    from trainer.models import create_model

    root = tmp_path_factory.mktemp("models")
    rows, truth = [], {}
    for k in range(2):
        rgb, centres = _blobs(SIZE, 14, seed=k)
        Image.fromarray(rgb).save(root / f"img{k}.png")
        truth[k] = centres
        rows += [(f"img{k}.png", f"{x:.3f}", f"{y:.3f}") for x, y in centres]
    with open(root / "points.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "x", "y"])
        w.writerows(rows)
    config = DetectorRunConfig(
        out_dir=str(root / "run"), points=str(root / "points.csv"), diameter_px=DIAMETER,
        width=8, depth=2, epochs=3, steps_per_epoch=12, batch_size=4, crop_px=64, lr=4e-3,
        val_fraction=0.0, device="cpu", num_threads=1, seed=3)
    result = run_detector_training(config, sink=EventSink(), stop=threading.Event(),
                                   log=lambda m: None)
    assert result.status == "finished", result.error

    torch.manual_seed(0)
    args = {"channels": [4, 4, 8, 8]}
    net = create_model("cnn", len(CLASSES), **args)
    classifier = save_model_file(root / "classifier.cvmodel", state_dict=net.state_dict(),
                                 mean_image=torch.rand(3, 40, 40),
                                 meta={"arch": "cnn", "arch_kwargs": args, "classes": CLASSES})
    return {"detector": Path(result.best_path), "classifier": Path(classifier),
            "image": root / "img0.png", "truth": truth[0]}


@pytest.fixture
def window(qtbot, tmp_path: Path, models):
    path = tmp_path / "blobs.cvproj"
    with ProjectStore.create(path) as store:
        add_classes(store, [{"name": c} for c in CLASSES])
        add_images(store, [models["image"]])
    w = MainWindow()
    qtbot.addWidget(w)
    w.install_tools()
    w.resize(1366, 768)
    w.show()
    assert w.open_project(path)
    qtbot.waitUntil(lambda: w.view.handle is not None, timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)
    return w


def _proposals(store, image_id):
    cells = store.cell_arrays(image_id)
    return cells.ids[cells.proposed], cells.xy[cells.proposed]


def _recall(found: np.ndarray, truth: np.ndarray, radius: float) -> float:
    d = cdist(truth, found)
    r, c = linear_sum_assignment(d)
    return float(np.sum(d[r, c] <= radius)) / len(truth)


def _choose(qtbot, dialog, path: Path) -> None:
    dialog.method.choose_file(path)
    assert dialog.method.wait_idle()
    qtbot.waitUntil(lambda: not dialog.method.busy(), timeout=WAIT_MS)


def test_a_trained_detector_model_makes_proposals_in_one_step(qtbot, window, models):
    w = window
    w.store.add_model("nuclei detector", str(models["detector"]), "heatmap_unet", ["cell"])
    w.store.add_model("a classifier", str(models["classifier"]), "cnn", CLASSES)
    dialog = w.regions_tool.open_detection()
    dialog.where.setCurrentIndex(dialog.where.findData("image"))
    assert dialog.method.is_classical() and dialog.mode.isEnabled()
    # the project's detector models are offered (its classifiers are not)
    assert dialog.method.wait_idle()
    combo = dialog.method.method
    listed = [combo.itemText(i) for i in range(combo.count())]
    assert listed == ["Classical (stain or contrast; no model)", "Detector: nuclei detector",
                      "Detector model file…"]

    # a classifier chosen as a detector: refused by name, the method stays classical
    _choose(qtbot, dialog, models["classifier"])
    assert "not a cell detector" in dialog.method.info.text()
    assert "classifier" in dialog.method.info.text()
    assert dialog.method.is_classical()

    _choose(qtbot, dialog, models["detector"])
    assert dialog.method.model() is not None
    assert dialog.method.model().path == models["detector"]
    assert "Trained detector" in dialog.method.info.text()
    assert not dialog.mode.isEnabled() and not dialog.sensitivity.isEnabled()
    qtbot.waitUntil(lambda: dialog.method.device.findData("cpu") >= 0, timeout=WAIT_MS)
    dialog.method.device.setCurrentIndex(dialog.method.device.findData("cpu"))
    assert dialog.detect_button.isEnabled()
    seen = []
    original = dialog._on_progress
    dialog._on_progress = lambda p: (seen.append(p), original(p))
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=WAIT_MS)
    assert "proposal" in dialog.result_message, dialog.status.text()
    assert seen and seen[-1].tiles_done == seen[-1].tiles_total  # progress per tile
    assert f"by {models['detector'].name} on cpu" in dialog.result_message
    assert w.wait_idle(WAIT_MS)

    image = w.session.image_id
    ids, xy = _proposals(w.store, image)
    assert _recall(xy, models["truth"], DIAMETER / 2) >= 0.8, dialog.status.text()
    assert len(ids) <= 1.2 * len(models["truth"])
    cell = w.store.cell(str(ids[0]))
    assert cell.label_source == "detector" and cell.score is not None and cell.proposed
    assert w.undo_action.text().startswith("&Undo Detect")
    assert "trained" in w.undo_action.text()
    assert w.undo()  # one step
    qtbot.waitUntil(lambda: len(_proposals(w.store, image)[0]) == 0, timeout=WAIT_MS)
    (first,) = w.store.detection_runs(image)
    assert first.params["tta"] is False

    # again, averaging the 8 orientations: the run record says so, the cells are found too
    assert not dialog.method.tta.isHidden() and not dialog.method.tta_choice()
    dialog.method.tta.setChecked(True)
    assert dialog.method.tta_choice()
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=WAIT_MS)
    assert w.wait_idle(WAIT_MS)
    assert w.store.detection_runs(image)[-1].params["tta"] is True
    assert _recall(_proposals(w.store, image)[1], models["truth"], DIAMETER / 2) >= 0.8
    # back to the classical method: the box is not offered (it is a trained detector's)
    dialog.method.method.setCurrentIndex(0)
    dialog.method._update()
    assert dialog.method.tta.isHidden() and not dialog.method.tta_choice()
    dialog.close()


def test_detect_and_classify_gives_proposals_with_predictions(qtbot, window, models):
    w = window
    session = w.prediction_tools.session
    dialog = w.regions_tool.open_detection()
    assert not dialog.classify.isEnabled()  # no active model yet
    # the reverse: a detector is no classifier, refused by name (by the panel and its session)
    with pytest.raises(ValueError, match="not a cell classifier.*cell detector"):
        session.choose(models["detector"], read_model_info(models["detector"]))
    panel = w.prediction_tools.model_panel
    panel.load_model(models["detector"])
    qtbot.waitUntil(lambda: "refused" in panel.info.text(), timeout=WAIT_MS)
    assert session.choice is None and not dialog.classify.isEnabled()
    choice = session.choose(models["classifier"], read_model_info(models["classifier"]))
    assert dialog.classify.isEnabled() and choice.name in dialog.classify.text()
    dialog.where.setCurrentIndex(dialog.where.findData("image"))
    _choose(qtbot, dialog, models["detector"])
    dialog.method.device.setCurrentIndex(max(0, dialog.method.device.findData("cpu")))
    dialog.classify.setChecked(True)
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=WAIT_MS)
    assert "classified" in dialog.result_message, dialog.status.text()
    assert w.wait_idle(WAIT_MS)

    ids, _xy = _proposals(w.store, w.session.image_id)
    assert len(ids) >= 5
    preds = w.store.predictions(choice.model_id, [str(i) for i in ids])
    assert np.isfinite(preds.probs).all()  # every proposal predicted
    assert np.allclose(preds.probs.sum(axis=1), 1.0, atol=1e-4)
    assert all(w.store.cell(str(i)).proposed for i in ids)  # still to be reviewed
    dialog.close()
