"""A trained detector on a project's image (cellviewer.core.detect.trained): detecting in an
area finds what detecting the whole image finds there (the read box grown by the halo and
aligned to the pooling grid), a run is one undoable step of proposals that names its model;
detector files told from classifier files by their header (cellviewer.core.detect.models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from cellviewer.core.detect.area import Area
from cellviewer.core.detect.models import (
    NotADetectorError,
    check_detector_file,
    project_detectors,
)
from cellviewer.core.detect.trained import add_trained_to_project, run_trained_detection
from cellviewer.core.io.project_import import add_images
from cellviewer.core.store import ProjectStore
from trainer.detect import model as net
from trainer.detect.infer import Detector
from trainer.detect.modelfile import save_detector_file
from trainer.detect.train import detector_settings
from trainer.engine.modelfile import save_model_file
from trainer.formats.detector_config import DetectorRunConfig
from trainer.models import create_model

SIZE = (200, 240)  # h, w


def _random_net(depth: int = 2) -> torch.nn.Module:
    """Random weights and batch-norm statistics: peaks everywhere, the hardest case."""
    torch.manual_seed(0)
    model = net.create(width=4, depth=depth)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    torch.nn.init.zeros_(model.head.bias)
    return model.eval()


def _meta(downsample: int, depth: int = 2) -> dict:
    cfg = DetectorRunConfig(out_dir="x", points="p.csv", diameter_px=10.0 * downsample,
                            downsample=downsample, depth=depth, width=4)
    return {"detector": detector_settings(cfg, 0.05),
            "arch_kwargs": {"width": 4, "depth": depth}}


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(4)
    rgb = np.clip(rng.normal(200, 30, SIZE + (3,)), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "noise.png")
    store = ProjectStore.create(tmp_path / "p.cvproj")
    store.user = "ana"
    (image_id,) = add_images(store, [tmp_path / "noise.png"])
    yield store, image_id, rgb
    store.close()


def test_tiles_of_plain_glass_are_skipped_and_no_cell_near_tissue_is_lost(tmp_path):
    """An image two thirds glass: the glass tiles are neither read nor run, and every
    detection of the unskipped run within the network's reach of the tissue is found too."""
    rng = np.random.default_rng(5)
    h, w, tissue_x0 = 256, 768, 512
    rgb = np.full((h, w, 3), 255, np.uint8)
    rgb[:, tissue_x0:] = np.clip(rng.normal(150, 40, (h, w - tissue_x0, 3)), 0, 255)
    Image.fromarray(rgb).save(tmp_path / "glass.png")
    with ProjectStore.create(tmp_path / "g.cvproj") as store:
        store.user = "ana"
        (image_id,) = add_images(store, [tmp_path / "glass.png"])
        det = Detector(_random_net(), _meta(1), torch.device("cpu"), path="rand.cvmodel")
        skipping = run_trained_detection(store, image_id, None, det, tile=64)
        reading = run_trained_detection(store, image_id, None, det, tile=64,
                                        skip_background=False)
    assert skipping.tiles_total == reading.tiles_total == 48
    assert reading.tiles_skipped == 0
    assert 20 <= skipping.tiles_skipped < 32  # most of the 32 glass tiles, no tissue tile
    near = reading.x >= tissue_x0 - det.halo - 2
    assert near.sum() > 20 and len(skipping) < len(reading)
    # every cell near the tissue is still found, and nothing new
    assert cKDTree(skipping.xy()).query(reading.xy()[near])[0].max() < 1e-6
    assert cKDTree(reading.xy()).query(skipping.xy())[0].max() < 1e-6


@pytest.mark.parametrize("downsample", [1, 2])
def test_an_area_finds_what_the_whole_image_finds_there(project, downsample):
    store, image_id, rgb = project
    det = Detector(_random_net(), _meta(downsample), torch.device("cpu"), path="rand.cvmodel")
    whole = det.detect_array(rgb, tile=None)
    area = Area.box(37, 53, 121, 99)  # not on any grid
    inside = area.contains(whole.x, whole.y)
    assert inside.sum() > 10
    progress = []
    found = run_trained_detection(store, image_id, area, det, progress=progress.append)
    assert len(found) == int(inside.sum())
    d = cdist(found.xy(), whole.xy()[inside])
    assert d.min(axis=1).max() < 0.01 and d.min(axis=0).max() < 0.01
    assert area.contains(found.x, found.y).all()
    assert progress and progress[-1].tiles_done == progress[-1].tiles_total
    assert progress[-1].fraction == pytest.approx(1.0)

    polygon = Area.from_polygon([[20, 20], [200, 30], [60, 180]])
    tri = run_trained_detection(store, image_id, polygon, det)
    assert len(tri) == int(polygon.contains(whole.x, whole.y).sum())


def test_a_run_is_one_undoable_step_naming_its_model(project):
    store, image_id, _rgb = project
    det = Detector(_random_net(), _meta(1), torch.device("cpu"), path="/m/rand.cvmodel")
    found = run_trained_detection(store, image_id, None, det)
    assert not found.partial and found.tiles_done == found.tiles_total == 1
    result = add_trained_to_project(store, image_id, found)
    assert result.n_added == len(found) - result.n_skipped > 0
    cells = store.cell_arrays(image_id)
    assert cells.proposed.all() and len(cells.ids) == result.n_added
    op = store.operations(1)[0]
    assert "trained rand.cvmodel" in op.description
    assert store.undo()
    assert len(store.cell_arrays(image_id).ids) == 0


def test_a_cancelled_run_keeps_the_tiles_done_and_says_so(project):
    store, image_id, _rgb = project
    det = Detector(_random_net(), _meta(1), torch.device("cpu"), path="/m/rand.cvmodel")
    seen = []
    found = run_trained_detection(store, image_id, None, det, tile=64,
                                  progress=seen.append, cancelled=lambda: len(seen) >= 2)
    assert found.partial and found.tiles_done == 2 and found.tiles_total == 16  # 240 x 200 px
    assert seen[-1].fraction == pytest.approx(2 / 16)
    assert "cancelled after 2 of 16 tiles" in found.notes[0]
    result = add_trained_to_project(store, image_id, found)
    run = store.operations(1)[0]
    assert result.n_added == len(store.cell_arrays(image_id).ids) and "Detect" in run.description


def test_detector_files_are_told_from_classifiers_by_their_header(project, tmp_path):
    store, _image_id, _rgb = project
    model = _random_net()
    detector = save_detector_file(tmp_path / "det.cvmodel", state_dict=model.state_dict(),
                                  meta=_meta(2))
    args = {"channels": [4, 4, 8, 8]}
    cnn = create_model("cnn", 2, **args)
    classifier = save_model_file(tmp_path / "cls.cvmodel", state_dict=cnn.state_dict(),
                                 mean_image=torch.rand(3, 40, 40),
                                 meta={"arch": "cnn", "arch_kwargs": args,
                                       "classes": ["a", "b"]})
    info = check_detector_file(detector)
    assert info.diameter_px == 20.0 and info.downsample == 2
    assert "det.cvmodel" in info.describe() and "1/2" in info.describe()
    with pytest.raises(NotADetectorError, match="not a cell detector.*classifier") as exc:
        check_detector_file(classifier)
    assert "cls.cvmodel" in str(exc.value)
    with pytest.raises(NotADetectorError, match="not found"):
        check_detector_file(tmp_path / "missing.cvmodel")

    store.add_model("my detector", str(detector), "heatmap_unet", ["cell"])
    store.add_model("my classifier", str(classifier), "cnn", ["a", "b"])
    store.add_model("gone", str(tmp_path / "gone.cvmodel"), "cnn", ["a"])
    listed = project_detectors(store)
    assert [(m.name, m.path) for m in listed] == [("my detector", detector)]
