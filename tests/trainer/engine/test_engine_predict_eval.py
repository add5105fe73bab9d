"""A trained tiny model: the prediction API, evaluation files and the blur-robustness table."""

import csv
import json

import numpy as np
import pytest
import torch
from engine_testdata import make_patchset, tiny_config
from PIL import Image, ImageFilter

from trainer.engine.events import EventSink
from trainer.engine.loop import run_training
from trainer.evaluate import evaluate_model
from trainer.formats.blur import SIGMAS, blur_patches, blur_pre_resize
from trainer.formats.patchset import load_patchset, resize_to_patch
from trainer.predict import Predictor
from trainer.robustness import blur_robustness, drop_slope


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch run on a patch set whose source crops are 80 px (field of view 80)."""
    root = tmp_path_factory.mktemp("engine-predict")
    ps_path = make_patchset(root / "train.patches", n_per_class=20, crop_size=80)
    torch.set_num_threads(1)
    result = run_training(tiny_config(ps_path, root / "run"), sink=EventSink())
    assert result.status == "finished", result.error
    return result, load_patchset(ps_path)


def test_predictor_gives_probabilities_of_the_model_classes(trained):
    result, ps = trained
    p = Predictor.load(result.best_path, device="cpu")
    assert p.classes == ["red", "green", "blue"] and p.fov_px == 80.0
    r = p.predict(np.asarray(ps.patches[:10]), batch_size=4)
    assert r.probs.shape == (10, 3) and r.probs.dtype == np.float32
    assert np.allclose(r.probs.sum(axis=1), 1.0, atol=1e-5)
    assert r.labels == [p.classes[i] for i in r.predicted]
    single = p.predict(np.asarray(ps.patches[3]))  # one (40, 40, 3) patch
    assert single.probs.shape == (1, 3)
    assert np.allclose(single.probs[0], r.probs[3], atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA-graph path needs CUDA")
@pytest.mark.parametrize("compile_single", [False, True])
def test_a_single_patch_on_cuda_replays_a_float32_graph(trained, compile_single):
    result, ps = trained
    p = Predictor.load(result.best_path, device="cuda", compile_single=compile_single)
    patches = np.asarray(ps.patches[:8])
    batch = p.predict(patches).probs  # bf16 autocast
    singles = np.concatenate([p.predict(patches[i]).probs for i in range(8)])
    assert p._single is not None  # the graph was captured, not the eager fallback
    assert np.abs(singles - batch).max() < 5e-3  # float32 vs bf16: H100 measured 4.6e-4


def test_compile_single_changes_nothing_on_the_cpu(trained):
    result, ps = trained
    plain = Predictor.load(result.best_path, device="cpu")
    compiled = Predictor.load(result.best_path, device="cpu", compile_single=True)
    patch = np.asarray(ps.patches[5])
    assert np.array_equal(compiled.predict(patch).probs, plain.predict(patch).probs)
    assert compiled._single is None and not compiled.use_graph  # one eager forward


def test_predictor_whitens_with_the_model_mean_image(trained):
    result, ps = trained
    p = Predictor.load(result.best_path, device="cpu")
    x = torch.from_numpy(np.array(ps.patches[:5])).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        expected = torch.softmax(p.model(x - p.model_file.mean_image), dim=1).numpy()
    assert np.allclose(p.predict(np.asarray(ps.patches[:5])).probs, expected, atol=1e-5)


def test_embeddings_come_with_the_probabilities(trained):
    result, ps = trained
    p = Predictor.load(result.best_path, device="cpu")
    r = p.predict(np.asarray(ps.patches[:6]), return_embeddings=True)
    assert r.embeddings.shape == (6, p.num_features)
    plain = p.predict(np.asarray(ps.patches[:6]))
    assert np.allclose(r.probs, plain.probs, atol=1e-5)


def test_predictor_refuses_bad_input(trained):
    result, ps = trained
    p = Predictor.load(result.best_path, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        p.predict(np.zeros((2, 40, 40, 3), np.float32))
    with pytest.raises(ValueError, match="40, 40, 3"):
        p.predict(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="source crops"):
        p.predict(np.asarray(ps.patches[:2]), blur_sigma=0.4, blur_mode="pre")
    assert p.predict(np.zeros((0, 40, 40, 3), np.uint8)).probs.shape == (0, 3)


def test_blur_in_the_predictor_is_pil_blur_then_the_usual_path(trained):
    result, ps = trained
    p = Predictor.load(result.best_path, device="cpu")
    patches = np.asarray(ps.patches[:8])
    by_hand = np.stack([np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(0.8)))
                        for x in patches])
    assert np.array_equal(blur_patches(patches, 0.8), by_hand)
    assert np.allclose(p.predict(patches, blur_sigma=0.8).probs, p.predict(by_hand).probs)
    crops = np.asarray(ps.source_crops[:8])  # 80 px: sigma_pre = 2 x sigma
    pre = np.stack([resize_to_patch(np.asarray(
        Image.fromarray(c).filter(ImageFilter.GaussianBlur(1.6)))) for c in crops])
    assert np.array_equal(blur_pre_resize(crops, 0.8), pre)
    got = p.predict(patches, blur_sigma=0.8, blur_mode="pre", source_crops=crops).probs
    assert np.allclose(got, p.predict(pre).probs)


def test_drop_slope_is_the_least_squares_slope_against_log2_one_plus_sigma():
    sigmas = [0.0, *SIGMAS]
    x = np.log2(1 + np.array(sigmas))
    assert drop_slope(sigmas, 0.9 - 0.2 * x) == pytest.approx(-0.2)
    # two points: the slope of the line through them
    assert drop_slope([0.0, 1.0], [0.8, 0.6]) == pytest.approx(-0.2)


def test_robustness_table_with_and_without_source_crops(trained, tmp_path):
    result, ps = trained
    p = Predictor.load(result.best_path, device="cpu")
    patches, labels = np.asarray(ps.patches), np.asarray(ps.labels, dtype=np.int64)
    report = blur_robustness(p, patches, labels, source_crops=np.asarray(ps.source_crops))
    assert [(r["mode"], r["sigma"]) for r in report.rows] == (
        [("post", s) for s in SIGMAS] + [("pre", s) for s in SIGMAS])
    assert set(report.slopes) == {"post", "pre"}
    first = report.rows[0]
    assert abs(first["delta_macro_f1"]) <= 0.05  # sigma 0.1 changes little
    assert first["delta_macro_f1"] == pytest.approx(first["macro_f1"] - report.clean_macro_f1)
    paths = report.write(tmp_path)
    with open(paths["csv"]) as fh:
        assert len(list(csv.DictReader(fh))) == 11  # clean + 10
    assert "| post | 1.6 |" in paths["md"].read_text()
    no_crops = blur_robustness(p, patches, labels)
    assert len(no_crops.rows) == 5 and "no source crops" in no_crops.notes[0]


def test_evaluation_of_the_run_writes_json_and_csv(trained, tmp_path):
    result, ps = trained
    metrics, classes, paths = evaluate_model(result.best_path, device="cpu", out_dir=tmp_path)
    report = json.loads(paths["json"].read_text())
    assert report["n"] == metrics.n == 12  # the run's validation cells: 20% of 3 x 20
    assert report["accuracy"] == pytest.approx(metrics.accuracy)
    assert len(report["confusion_normalized"]) == 3
    with open(paths["per_class"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["class"] for r in rows] == classes + ["(macro)"]
    with open(paths["confusion"]) as fh:
        cm = list(csv.reader(fh))
    assert cm[0] == ["true \\ predicted", *classes]
    assert all(abs(sum(float(v) for v in row[1:]) - 1.0) < 1e-4 for row in cm[1:])
    # the run wrote the same evaluation of its best model when it finished
    run_report = json.loads((result.run_dir / "evaluation.json").read_text())
    assert run_report["confusion"] == report["confusion"]
