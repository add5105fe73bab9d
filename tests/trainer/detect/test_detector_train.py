"""train-detector: overfitting blobs, the run folder and its protocol events, regions and
partial labels as training data, stop and resume."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from detector_testdata import (
    DIAMETER,
    blob_image,
    make_blobs,
    read_points,
    spread_centres,
    tiny_detector_config,
)
from PIL import Image

from trainer.detect.data import Area, CropSampler, box_polygon, prepare, read_regions
from trainer.detect.infer import load_detector
from trainer.detect.match import match
from trainer.formats.protocol import read_events


def test_overfits_blobs_and_detect_recovers_the_training_centres(trained):
    det = load_detector(trained.model, device="cpu")
    truth = read_points(trained.data / "points.csv")
    tp = n = fp = 0
    for name, pts in truth.items():
        rgb = np.asarray(Image.open(trained.data / name).convert("RGB"))
        found = det.detect_array(rgb)
        k, _ = match(found.xy(), pts, DIAMETER / 4)
        tp, n, fp = tp + k, n + len(pts), fp + len(found) - k
    assert tp >= 0.9 * n, (tp, n)
    assert fp <= 0.1 * n, fp


def test_run_folder_and_events_follow_the_train_layout(trained):
    names = {p.name for p in trained.run.iterdir()}
    assert {"config.json", "events.jsonl", "metrics.csv", "split.json", "last.cvmodel",
            "best.cvmodel"} <= names
    kinds = [e["event"] for e in read_events(trained.run / "events.jsonl")]
    assert kinds[0] == "notice" and "started" in kinds and kinds[-2:] == ["stopped", "finished"]
    assert kinds.count("epoch") == 2
    finished = trained.events[-1]
    assert finished["task"] == "detection" and finished["model_path"] == str(trained.model)
    epoch = next(e for e in trained.events if e["event"] == "epoch")
    assert 0 < epoch["threshold"] < 1 and 0 <= epoch["val_f1"] <= 1
    header = json.loads((trained.run / "config.json").read_text())
    assert header["diameter_px"] == DIAMETER
    from trainer.formats.model_header import model_task, read_model_header

    meta = read_model_header(trained.model)
    assert model_task(meta) == "detection" and meta["classes"] == ["cell"]
    assert meta["detector"]["threshold"] == finished["metrics"]["threshold"]


def test_regions_file_polygons_boxes_and_the_points_inside(tmp_path):
    size = (96, 128)
    centres = spread_centres(size, 14, seed=5)
    Image.fromarray(blob_image(size, centres)).save(tmp_path / "slide.png")
    box = [10, 10, 70, 80]
    poly = [[60, 5], [125, 5], [125, 90], [60, 90]]
    (tmp_path / "regions.json").write_text(json.dumps({"regions": [
        {"image": "slide.png", "box": box, "points": centres.tolist()},
        {"image": "slide.png", "name": "p", "geometry": {"type": "Polygon",
                                                        "coordinates": [poly + [poly[0]]]},
         "points": centres.tolist()}]}))
    areas = read_regions(tmp_path / "regions.json")
    assert [a.name for a in areas] == ["slide.png#1", "p"]
    inside_box = ((centres[:, 0] >= 10) & (centres[:, 0] <= 70) & (centres[:, 1] >= 10)
                  & (centres[:, 1] <= 80))
    assert len(areas[0].points) == int(inside_box.sum())
    prep = prepare(areas[0], 1, DIAMETER)
    assert prep.weight[5, 5] == 0 and prep.weight[40, 40] == 1  # outside / inside the box
    assert prep.box == (10, 10, 71, 81)
    assert prep.pos.sum() == len(areas[0].points)
    (tmp_path / "bad.json").write_text(json.dumps({"regions": [{"image": "slide.png",
                                                                "polygon": [[0, 0], [1, 1]]}]}))
    from trainer.detect.data import DetectorDataError

    with pytest.raises(DetectorDataError, match=r"bad.json, region 1: an outline needs at least"):
        read_regions(tmp_path / "bad.json")


def test_partial_labels_ignore_what_lies_far_from_every_label(tmp_path):
    rgb = blob_image((80, 80), np.array([[20.0, 20.0], [60.0, 60.0]]))
    Image.fromarray(rgb).save(tmp_path / "a.png")
    area = Area(tmp_path / "a.png", np.array([[20.0, 20.0]]), box_polygon(0, 0, 79, 79))
    full = prepare(area, 1, DIAMETER)
    part = prepare(area, 1, DIAMETER, partial_labels=True, ignore_beyond=1.0)
    assert full.weight[60, 60] == 1  # the unlabelled cell: background when labels are full
    assert part.weight[60, 60] == 0  # ignored when they are partial
    assert part.weight[20, 30] == 1  # within a diameter of the label: still background
    assert part.weight[20, 33] == 0


def test_far_from_labels_only_what_could_be_a_nucleus_is_ignored(tmp_path):
    rgb = blob_image((80, 80), np.array([[20.0, 20.0], [60.0, 60.0]]))
    Image.fromarray(rgb).save(tmp_path / "a.png")
    area = Area(tmp_path / "a.png", np.array([[20.0, 20.0]]), box_polygon(0, 0, 79, 79))
    part = prepare(area, 1, DIAMETER, partial_labels=True)
    stained = prepare(area, 1, DIAMETER, partial_labels=True, unstained_is_background=True)
    assert part.weight[20, 60] == 0  # pale background far from the label: ignored ...
    assert stained.weight[20, 60] == 1  # ... or background when too pale to be a nucleus
    assert stained.weight[60, 60] == 0  # the unlabelled (dark) cell stays ignored
    yy, xx = np.mgrid[0:80, 0:80]
    middle = np.hypot(xx - 60, yy - 60) <= DIAMETER / 4
    assert (stained.weight[middle] == 0).all()  # and everything within a quarter diameter
    assert stained.weight[20, 30] == 1  # near the label: background as before


def test_stain_jitter_changes_the_stains_inside_the_image_and_nothing_else(tmp_path):
    rgb = blob_image((40, 40), np.array([[20.0, 20.0]]))
    Image.fromarray(rgb).save(tmp_path / "a.png")
    area = prepare(Area(tmp_path / "a.png", np.array([[20.0, 20.0]])), 1, DIAMETER)

    def draw(jitter: float):
        return CropSampler([area], 64, seed=3, stain_jitter=jitter).batch(4)

    plain, again, jittered = draw(0.0), draw(0.0), draw(0.1)
    for a, b in zip(plain, again, strict=True):  # a seeded draw repeats
        np.testing.assert_array_equal(a, b)
    imgs, tgts, poss, wts = jittered
    outside = wts == 0  # the 64-px crops overhang the 40-px image: grey padding there
    assert outside.any() and (~outside).any()
    # the same crops, flips and brightness (targets, weights, the grey outside), other
    # colours inside
    for a, b in zip((tgts, poss, wts), plain[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    out3, in3 = np.repeat(outside, 3, axis=1), np.repeat(~outside, 3, axis=1)
    np.testing.assert_array_equal(imgs[out3], plain[0][out3])
    assert np.abs(imgs - plain[0])[in3].mean() > 0.02


def test_stop_then_resume_finishes_the_run(tmp_path):
    from trainer.detect.train import run_detector_training
    from trainer.engine.events import EventSink

    points = make_blobs(tmp_path / "blobs", n_images=1, size=(64, 64), n_cells=6)
    cfg = tiny_detector_config(points, tmp_path / "run", epochs=2, steps_per_epoch=3,
                               width=4)
    stop = threading.Event()
    stop.set()  # the first batch finishes, then the run stops
    first = run_detector_training(cfg, sink=EventSink(), stop=stop, log=lambda m: None)
    assert first.status == "stopped" and first.last_path is not None
    assert first.best_path is None
    sink = EventSink()
    again = run_detector_training(cfg, sink=sink, stop=threading.Event(),
                                  resume_from=first.last_path, log=lambda m: None)
    assert again.status == "finished" and again.best_path is not None
    assert [e["epoch"] for e in sink.history if e["event"] == "epoch"] == [1, 2]
    assert any("restarts" in e.get("message", "") for e in sink.history)


def test_bad_configuration_and_missing_images_are_reported_by_name(tmp_path):
    from trainer.detect.train import run_detector_training
    from trainer.engine.events import EventSink

    points = make_blobs(tmp_path / "blobs", n_images=1, size=(64, 64), n_cells=4)
    cfg = tiny_detector_config(points, tmp_path / "run", image_list=["nope.png"])
    sink = EventSink()
    res = run_detector_training(cfg, sink=sink, log=lambda m: None)
    assert res.status == "error" and res.error_kind == "bad-patchset"
    assert "image 'nope.png' not found" in res.error and "points.csv" in res.error
    res = run_detector_training(cfg.replace(crop_px=30), sink=EventSink(), log=lambda m: None)
    assert res.error_kind == "bad-config" and "crop_px" in res.error


def test_with_partial_labels_validation_judges_only_detections_near_a_label():
    from trainer.detect.train import near_a_label

    labels = np.array([[10.0, 10.0], [50.0, 10.0]])
    xy = np.array([[12.0, 10.0], [50.0, 23.0], [50.0, 25.0], [90.0, 90.0]])
    np.testing.assert_array_equal(near_a_label(xy, labels, 14.0), [True, True, False, False])
    assert near_a_label(xy, np.zeros((0, 2)), 14.0).tolist() == [False] * 4
    assert near_a_label(np.zeros((0, 2)), labels, 14.0).shape == (0,)
