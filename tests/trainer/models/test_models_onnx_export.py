"""``python -m trainer export-onnx``: every registered family exports to an ONNX graph that
onnxruntime runs to the PyTorch model's probabilities (within 1e-4), whitening folded in, with
the class names, field of view, input scaling and the model file's hash in its metadata."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from foundation_testdata import SMALL

from trainer.cli import main
from trainer.engine import onnx_export
from trainer.engine.modelfile import save_model_file
from trainer.models import list_models
from trainer.predict import Predictor

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

# Random-weight small variants of each scratch family (same layers, fewer or narrower).
TINY_SCRATCH = {
    "mlp": {"hidden": [32, 16]},
    "cnn": {"channels": [8, 8, 16, 16]},
    "resnet_d4": {},
    "nin": {"mlp_hidden": [32, 16]},
    "se_resnet_d4": {},
    "efficientnet_b0": {},
    "convnext_tiny": {},
    "custom_vit": {"depth": 2, "dim": 32, "heads": 2, "mlp_dim": 64},
}
TINY = {**TINY_SCRATCH, **{n: {"pretrained": False, **kw} for n, kw in SMALL.items()}}
CLASSES = ["tumour", "stroma", "lymphocyte"]


def save_tiny(path, arch, seed=0):
    torch.manual_seed(seed)
    from trainer.models import create_model

    model = create_model(arch, len(CLASSES), **TINY[arch]).eval()
    # Non-zero running statistics, so BatchNorm folding is exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    save_model_file(path, state_dict=model.state_dict(), mean_image=torch.rand(3, 40, 40) * 0.8,
                    meta={"arch": arch, "arch_kwargs": TINY[arch], "classes": CLASSES,
                          "fov_px": 52.0})
    return path


def test_every_registered_model_has_a_tiny_variant_here():
    assert sorted(TINY) == sorted(list_models())


@pytest.mark.parametrize("arch", sorted(TINY))
def test_each_family_exports_and_onnxruntime_matches_torch(tmp_path, arch):
    model_path = save_tiny(tmp_path / f"{arch}.cvmodel", arch)
    out = tmp_path / f"{arch}.onnx"
    report = onnx_export.export_model_file(model_path, out)
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4

    # Independently of the export's own check: the predictor's probabilities (torch path) on
    # patches of a batch size the tracer never saw.
    patches = np.random.default_rng(3).integers(0, 256, (7, 40, 40, 3), dtype=np.uint8)
    torch_probs = Predictor.load(model_path, device="cpu", backend="torch").predict(
        patches).probs
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probs, logits = session.run(["probs", "logits"], {"patches": patches})
    assert probs.shape == (7, 3) and logits.shape == (7, 3)
    np.testing.assert_allclose(probs, torch_probs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_metadata_names_classes_fov_scaling_and_the_model_hash(tmp_path):
    model_path = save_tiny(tmp_path / "m.cvmodel", "cnn")
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(model_path), str(out)]) == 0
    meta = onnx_export.read_metadata(out)
    assert meta["cellviewer.classes"] == CLASSES
    assert float(meta["cellviewer.fov_px"]) == 52.0
    assert meta["cellviewer.patch_size"] == "40"
    assert meta["cellviewer.input_layout"] == "nhwc-uint8"
    assert meta["cellviewer.whitening"] == "folded"
    assert "255" in meta["cellviewer.input_scaling"]
    assert meta["cellviewer.model_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "patches" and inp.type == "tensor(uint8)"
    assert inp.shape[1:] == [40, 40, 3] and not isinstance(inp.shape[0], int)  # dynamic batch


def test_float_nchw_input_gives_the_same_probabilities(tmp_path):
    model_path = save_tiny(tmp_path / "m.cvmodel", "cnn")
    u8, f32 = tmp_path / "u8.onnx", tmp_path / "f32.onnx"
    onnx_export.export_model_file(model_path, u8)
    onnx_export.export_model_file(model_path, f32, layout="nchw-float")
    patches = np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    blob = patches.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # OpenCV blobFromImage
    a = ort.InferenceSession(str(u8)).run(["probs"], {"patches": patches})[0]
    b = ort.InferenceSession(str(f32)).run(["probs"], {"patches": blob})[0]
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert json.loads(json.dumps(onnx_export.read_metadata(f32)))["cellviewer.input_layout"] \
        == "nchw-float"


def test_an_unexportable_family_is_refused_by_name(tmp_path, monkeypatch, capsys):
    model_path = save_tiny(tmp_path / "m.cvmodel", "cnn")
    monkeypatch.setitem(onnx_export.UNEXPORTABLE, "cnn", "it uses an operator ONNX lacks")
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(model_path), str(out)]) == 1
    err = capsys.readouterr().err
    assert "'cnn' cannot be exported to ONNX: it uses an operator ONNX lacks" in err
    assert not out.exists()


def test_a_failing_export_names_the_architecture_and_both_causes(monkeypatch):
    def fails(name):
        def export(*args):
            raise RuntimeError(f"{name} cannot trace this")
        return export

    monkeypatch.setattr(onnx_export, "_export_legacy", fails("legacy"))
    monkeypatch.setattr(onnx_export, "_export_dynamo", fails("dynamo"))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4800, 3))
    with pytest.raises(onnx_export.OnnxExportError,
                       match="'weird' could not be exported.*legacy cannot.*dynamo cannot"):
        onnx_export.export_graph(model, None, arch="weird")


def test_an_export_that_disagrees_with_torch_writes_nothing(tmp_path, monkeypatch):
    model_path = save_tiny(tmp_path / "m.cvmodel", "cnn")
    monkeypatch.setattr(onnx_export, "check_against_torch", lambda *a, **k: 0.5)
    out = tmp_path / "m.onnx"
    with pytest.raises(onnx_export.OnnxExportError, match="differs from the PyTorch model"):
        onnx_export.export_model_file(model_path, out)
    assert not out.exists()


def test_a_missing_model_file_is_a_clear_error(tmp_path, capsys):
    assert main(["export-onnx", str(tmp_path / "nope.cvmodel"), str(tmp_path / "x.onnx")]) == 1
    assert "nope.cvmodel: model file not found" in capsys.readouterr().err
