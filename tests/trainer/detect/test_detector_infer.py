"""Tiled inference equals untiled inference, with no duplicates at the seams; peak finding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from detector_testdata import blob_image, spread_centres
from scipy.spatial.distance import cdist

from trainer.detect import model as net
from trainer.detect.infer import Detector, find_peaks
from trainer.detect.train import detector_settings
from trainer.formats.detector_config import DetectorRunConfig


def random_detector(downsample: int, depth: int = 2, seed: int = 0) -> Detector:
    """An untrained network (random weights, random batch-norm statistics) with a low
    threshold: many peaks everywhere, the hardest case for seams."""
    torch.manual_seed(seed)
    model = net.create(width=4, depth=depth)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    torch.nn.init.zeros_(model.head.bias)
    model.eval()
    cfg = DetectorRunConfig(out_dir="x", points="p.csv", diameter_px=12.0 * downsample,
                            downsample=downsample, depth=depth, width=4)
    meta = {"detector": detector_settings(cfg, 0.05), "arch_kwargs": {"width": 4, "depth": depth}}
    return Detector(model, meta, torch.device("cpu"))


@pytest.mark.parametrize("downsample,depth,tta", [(1, 2, False), (2, 2, False), (3, 3, False),
                                                  (1, 2, True), (3, 3, True)])
def test_tiled_equals_untiled_within_a_pixel_and_no_duplicates_at_seams(downsample, depth, tta):
    size = (233 * downsample // 2 + 7, 301 * downsample // 2 + 5)  # odd sides: partial blocks
    centres = spread_centres(size, 40, seed=1, diameter=6.0 * downsample)
    rgb = blob_image(size, centres, diameter=6.0 * downsample)
    det = random_detector(downsample, depth)
    whole = det.detect_array(rgb, tile=None, tta=tta)
    tiled = det.detect_array(rgb, tile=32, tta=tta)
    assert whole.tiles == 1 and tiled.tiles > 9
    assert len(whole) > 30
    assert len(tiled) == len(whole)
    d = cdist(whole.xy(), tiled.xy())
    assert d.min(axis=1).max() < 1.0 and d.min(axis=0).max() < 1.0
    np.testing.assert_allclose(np.sort(tiled.score), np.sort(whole.score), atol=1e-4)
    pair = cdist(tiled.xy(), tiled.xy()) + np.eye(len(tiled)) * 1e9
    assert pair.min() > downsample  # no cell found twice (by two tiles)
    assert tiled.x.min() >= 0 and tiled.x.max() < size[1] and tiled.y.max() < size[0]


def test_tta_heatmap_turns_with_the_image_and_plain_inference_does_not():
    """Test-time augmentation makes the heatmap equivariant: the heatmap of the image turned a
    quarter (or mirrored) is the heatmap turned likewise. The plain network is not (checked,
    so that this test can fail)."""
    det = random_detector(1, depth=2, seed=3)
    work = np.random.default_rng(4).normal(size=(3, 64, 96)).astype(np.float32)
    turned = np.ascontiguousarray(np.rot90(work, 1, axes=(1, 2)))
    mirrored = np.ascontiguousarray(work[:, :, ::-1])
    tta = det.heatmap_logits(work, tta=True).numpy()
    np.testing.assert_allclose(det.heatmap_logits(turned, tta=True).numpy(), np.rot90(tta, 1),
                               atol=1e-4)
    np.testing.assert_allclose(det.heatmap_logits(mirrored, tta=True).numpy(), tta[:, ::-1],
                               atol=1e-4)
    plain = det.heatmap_logits(work).numpy()
    assert np.abs(det.heatmap_logits(turned).numpy() - np.rot90(plain, 1)).max() > 1e-2
    assert np.abs(tta - plain).max() > 1e-2  # the mean is not the identity's heatmap


def test_onnx_runtime_and_torch_find_the_same_cells():
    """On the CPU the network runs on ONNX Runtime (exported at load); torch eager gives the
    same heatmap and the same detections, with and without test-time augmentation."""
    size = (150, 170)
    rgb = blob_image(size, spread_centres(size, 20, seed=5, diameter=8.0), diameter=8.0)
    ort_det = random_detector(1, depth=2, seed=6)
    assert ort_det.backend == "onnxruntime", ort_det.backend_note
    torch_det = Detector(ort_det.model, ort_det.meta, torch.device("cpu"), backend="torch")
    assert torch_det.backend == "torch"
    work = np.random.default_rng(7).normal(size=(3, 64, 96)).astype(np.float32)
    np.testing.assert_allclose(ort_det.heatmap_logits(work).numpy(),
                               torch_det.heatmap_logits(work).numpy(), atol=1e-4)
    for tta in (False, True):
        a, b = ort_det.detect_array(rgb, tta=tta), torch_det.detect_array(rgb, tta=tta)
        assert len(a) == len(b) > 10
        assert cdist(a.xy(), b.xy()).min(axis=1).max() < 0.05
    with pytest.raises(ValueError, match="CPU backend"):
        Detector(ort_det.model, ort_det.meta, torch.device("cpu"), backend="tensorflow")


def test_cancel_keeps_the_tiles_done():
    rgb = blob_image((128, 128), spread_centres((128, 128), 12, seed=2))
    det = random_detector(1)
    calls = []
    found = det.detect_array(rgb, tile=32, cancelled=lambda: len(calls) >= 3,
                             progress=lambda done, total, cells: calls.append((done, total)))
    assert found.partial and found.tiles == 3 and calls[-1] == (3, 16)
    assert "cancelled after 3 of 16 tiles" in found.notes[0]


def test_find_peaks_subpixel_and_threshold():
    yy, xx = np.mgrid[0:40, 0:40]
    heat = 0.9 * np.exp(-((xx - 10.3) ** 2 + (yy - 20.6) ** 2) / 8) \
        + 0.4 * np.exp(-((xx - 30) ** 2 + (yy - 8) ** 2) / 8)
    logits = torch.from_numpy(np.log(heat + 1e-6) - np.log1p(-heat + 1e-6)).float()
    r, c, s = find_peaks(logits, 3, 0.5)
    assert len(r) == 1 and abs(c[0] - 10.3) < 0.15 and abs(r[0] - 20.6) < 0.15
    assert s[0] == pytest.approx(0.87, abs=0.03)  # the peak pixel's own value
    assert len(find_peaks(logits, 3, 0.3)[0]) == 2


def test_receptive_radius_bounds_what_an_output_pixel_sees():
    torch.manual_seed(0)
    for depth in (1, 2, 3):
        model = net.create(width=4, depth=depth).eval()
        n = 128
        x = torch.randn(1, 3, n, n, requires_grad=True)
        model(x)[0, 0, n // 2, n // 2].backward()
        assert x.grad is not None
        ys, xs = np.nonzero(x.grad[0].abs().sum(0).numpy())
        reach = max(np.abs(ys - n // 2).max(), np.abs(xs - n // 2).max())
        assert reach <= net.receptive_radius(depth)
