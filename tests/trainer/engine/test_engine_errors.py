"""Failures become ``error`` events a user can act on, and the run never hangs or crashes."""

import numpy as np
import pytest
import torch
from engine_testdata import make_patchset, tiny_config

from trainer.engine.events import EventSink
from trainer.engine.loop import run_training
from trainer.predict import Predictor


@pytest.fixture(scope="module")
def patchset(tmp_path_factory):
    torch.set_num_threads(1)
    return make_patchset(tmp_path_factory.mktemp("engine-errors") / "train.patches")


def _run(cfg, **kw):
    sink = EventSink()
    return run_training(cfg, sink=sink, **kw), sink.history


def test_out_of_memory_is_reported_with_what_to_do(patchset, tmp_path):
    def oom_on_forward(model):
        def hook(module, inputs):
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)")
        model.register_forward_pre_hook(hook)

    result, events = _run(tiny_config(patchset, tmp_path / "run"), on_model=oom_on_forward)
    assert result.status == "error" and result.exit_code == 1
    error = events[-1]
    assert error["event"] == "error" and error["kind"] == "out-of-memory"
    assert "batch size" in error["message"] and "Tried to allocate 2.00 GiB" in error["message"]
    # the same event is in the run folder's log
    assert '"out-of-memory"' in (tmp_path / "run" / "events.jsonl").read_text()


def test_a_non_finite_loss_stops_the_run_with_its_reason(patchset, tmp_path):
    def nan_logits(model):
        model.register_forward_hook(lambda m, i, out: out * float("nan"))

    result, events = _run(tiny_config(patchset, tmp_path / "run", heartbeat_s=100),
                          on_model=nan_logits)
    stopped = next(e for e in events if e["event"] == "stopped")
    assert stopped["reason"] == "non-finite-loss" and "learning rate" in stopped["detail"]
    assert events[-1]["event"] == "finished"
    assert not (tmp_path / "run" / "last.cvmodel").exists()  # no NaN weights written


def test_missing_foundation_weights_are_an_error_naming_the_file(patchset, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("CELLVIEWER_WEIGHTS_DIR", str(tmp_path / "weights"))
    cfg = tiny_config(patchset, tmp_path / "run", model="uni", model_args={})
    result, events = _run(cfg)
    assert events[-1]["kind"] == "missing-weights"
    assert "uni" in events[-1]["message"].lower()


def test_linear_probe_trains_the_head_on_cached_features(patchset, tmp_path):
    """A foundation model (a small timm ResNet with random weights stands in for ResNet-RS50):
    features computed once, the head trained, a model file holding the head only."""
    args = {"pretrained": False, "arch": "resnet10t", "input_size": 32}
    cfg = tiny_config(patchset, tmp_path / "run", model="resnetrs50", model_args=args,
                      mode="lp", epochs=2, batch_size=64)
    result, events = _run(cfg)
    assert result.status == "finished", result.error
    started = events[next(i for i, e in enumerate(events) if e["event"] == "started")]
    assert started["trainable_params"] < started["params"] / 50
    assert any("computing backbone features" in e.get("message", "") for e in events)
    p = Predictor.load(result.best_path, device="cpu")
    assert set(p.model_file.state_dict) == {"head.weight", "head.bias"}
    from trainer.formats.patchset import load_patchset

    patches = np.asarray(load_patchset(patchset).patches[:4])
    assert p.predict(patches).probs.shape == (4, 3)
