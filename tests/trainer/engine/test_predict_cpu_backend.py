"""The predictor's CPU path: ONNX Runtime behind the same ``Predictor`` API, with the same
probabilities as torch eager (within 1e-3; in practice 1e-6), and torch eager as the fallback
when onnxruntime is unavailable or forced off."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest
import torch

from trainer.engine.modelfile import save_model_file
from trainer.models import create_model
from trainer.predict import BACKEND_ENV, Predictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

CLASSES = ["a", "b", "c", "d"]
TINY = {"cnn": {"channels": [8, 8, 16, 16]},
        "custom_vit": {"depth": 2, "dim": 32, "heads": 2, "mlp_dim": 64}}


@pytest.fixture(params=sorted(TINY))
def model_path(request, tmp_path):
    arch = request.param
    torch.manual_seed(1)
    model = create_model(arch, len(CLASSES), **TINY[arch])
    path = tmp_path / f"{arch}.cvmodel"
    save_model_file(path, state_dict=model.state_dict(), mean_image=torch.rand(3, 40, 40),
                    meta={"arch": arch, "arch_kwargs": TINY[arch], "classes": CLASSES})
    return path


def _patches(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 40, 3), dtype=np.uint8)


def test_onnxruntime_is_the_cpu_path_and_matches_torch(model_path):
    ort_p = Predictor.load(model_path, device="cpu")
    torch_p = Predictor.load(model_path, device="cpu", backend="torch")
    assert ort_p.backend == "onnxruntime" and torch_p.backend == "torch"
    x = _patches(37)
    a, b = ort_p.predict(x, batch_size=16), torch_p.predict(x, batch_size=16)
    assert a.probs.dtype == np.float32 and a.probs.shape == (37, len(CLASSES))
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-3, rtol=0)
    assert (a.predicted == b.predicted).all()
    one = ort_p.predict(x[0])  # the live preview's single patch
    np.testing.assert_allclose(one.probs, b.probs[:1], atol=1e-3, rtol=0)
    blurred = ort_p.predict(x[:5], blur_sigma=1.5)
    np.testing.assert_allclose(blurred.probs, torch_p.predict(x[:5], blur_sigma=1.5).probs,
                               atol=1e-3, rtol=0)
    # Embeddings come from torch, with the probabilities beside them.
    emb = ort_p.predict(x[:3], return_embeddings=True)
    assert emb.embeddings is not None and emb.embeddings.shape[0] == 3
    np.testing.assert_allclose(emb.probs, b.probs[:3], atol=1e-3, rtol=0)
    assert ort_p.predict(x[:0]).probs.shape == (0, len(CLASSES))


def test_without_onnxruntime_the_predictor_falls_back_to_torch(model_path, monkeypatch, caplog):
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime' (test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with caplog.at_level(logging.INFO, logger="trainer.predict"):
        p = Predictor.load(model_path, device="cpu")
    assert p.backend == "torch"
    assert "onnxruntime" in p.backend_note and "ONNX Runtime not used" in caplog.text
    x = _patches(9)
    monkeypatch.setattr(builtins, "__import__", real_import)
    ref = Predictor.load(model_path, device="cpu", backend="torch").predict(x).probs
    np.testing.assert_allclose(p.predict(x).probs, ref, atol=1e-6, rtol=0)


def test_a_failing_export_falls_back_and_an_insisted_backend_raises(model_path, monkeypatch):
    from trainer.engine import onnx_export

    def broken(*args, **kwargs):
        raise onnx_export.OnnxExportError("model architecture 'x' could not be exported (test)")

    monkeypatch.setattr(onnx_export, "export_graph", broken)
    assert Predictor.load(model_path, device="cpu").backend == "torch"
    with pytest.raises(onnx_export.OnnxExportError):
        Predictor.load(model_path, device="cpu", backend="onnxruntime")


def test_the_environment_variable_forces_torch(model_path, monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert Predictor.load(model_path, device="cpu").backend == "torch"
    monkeypatch.setenv(BACKEND_ENV, "tensorflow")
    with pytest.raises(ValueError, match=BACKEND_ENV):
        Predictor.load(model_path, device="cpu")


def test_onnxruntime_runs_cache_sized_batches_whatever_batch_size_asks(model_path):
    # A batch of 1024 spills CustomViT's activations out of the CPU's caches (1.6x slower per
    # cell than 64 on 2 cores): the session gets at most ORT_CPU_BATCH patches a call, and the
    # probabilities are those of one patch at a time, in order.
    from trainer.predict import ORT_CPU_BATCH

    p = Predictor.load(model_path, device="cpu")
    session = p._ort.session
    sizes: list[int] = []

    class Recording:
        def run(self, names, feeds):
            sizes.append(len(feeds["patches"]))
            return session.run(names, feeds)

    x = _patches(2 * ORT_CPU_BATCH + 5)
    p._ort.session = Recording()
    big = p.predict(x, batch_size=1024)
    assert sizes == [ORT_CPU_BATCH, ORT_CPU_BATCH, 5]
    sizes.clear()
    p.predict(x[:20], batch_size=8)
    assert sizes == [8, 8, 4]  # a smaller batch_size is kept
    p._ort.session = session
    single = np.concatenate([p.predict(x[i:i + 1]).probs for i in range(len(x))])
    np.testing.assert_allclose(big.probs, single, atol=1e-5, rtol=0)
