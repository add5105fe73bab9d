"""Model files: everything prediction needs, loaded without executing code; damaged or foreign
files are refused with a message naming them."""

import json
import struct

import numpy as np
import pytest
import torch
from engine_testdata import TINY_CNN_ARGS

from trainer.engine.modelfile import (
    ModelFileError,
    build_model,
    load_model_file,
    read_model_meta,
    save_model_file,
)
from trainer.engine.step import load_optimizer_state, make_optimizer
from trainer.models import create_model

CLASSES = ["tumour", "stroma", "lymphocyte"]


def _model():
    torch.manual_seed(0)
    return create_model("cnn", 3, **TINY_CNN_ARGS).eval()


def _save(path, model, **kw):
    mean = torch.rand(3, 40, 40)
    meta = {"arch": "cnn", "arch_kwargs": TINY_CNN_ARGS, "classes": CLASSES, "fov_px": 40.0,
            "config": {"model": "cnn"}, "metrics": {"val_acc": 0.5}}
    save_model_file(path, state_dict=model.state_dict(), mean_image=mean, meta=meta, **kw)
    return mean


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = _model()
    path = tmp_path / "m.cvmodel"
    mean = _save(path, model)
    mf = load_model_file(path)
    assert mf.classes == CLASSES and mf.arch == "cnn" and mf.input_mode == "whitened"
    assert torch.equal(mf.mean_image, mean)
    assert mf.meta["metrics"] == {"val_acc": 0.5}
    assert read_model_meta(path)["num_classes"] == 3
    rebuilt = build_model(mf)
    x = torch.rand(4, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_the_file_is_safetensors_not_a_pickle(tmp_path):
    path = tmp_path / "m.cvmodel"
    _save(path, _model())
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    assert header["__metadata__"]["format"] == "cellviewer-model"
    assert b"\x80\x04" not in raw[:2]  # no pickle protocol marker at the start


def test_optimizer_state_round_trip(tmp_path):
    model = _model().train()
    opt = make_optimizer(model, "adamw", 1e-3, 0.01, torch.device("cpu"))
    model(torch.rand(8, 3, 40, 40)).sum().backward()
    opt.step()
    path = tmp_path / "last.cvmodel"
    _save(path, model, optimizer_state=opt.state_dict())
    mf = load_model_file(path, with_optimizer=True)
    assert load_model_file(path).optimizer_state is None  # only when asked for
    fresh = make_optimizer(model, "adamw", 1e-3, 0.01, torch.device("cpu"))
    load_optimizer_state(fresh, mf.optimizer_state)
    for p in model.parameters():
        a, b = opt.state[p], fresh.state[p]
        assert torch.equal(a["exp_avg"], b["exp_avg"])
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
        assert float(a["step"]) == float(b["step"]) == 1.0


@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_a_corrupt_file_is_refused_naming_it(tmp_path, damage):
    path = tmp_path / "bad.cvmodel"
    if damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        _save(path, _model())
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="bad.cvmodel"):
        load_model_file(path)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="not a CellViewer model"):
        load_model_file(path)


def test_missing_file_and_newer_format_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model_file(tmp_path / "nope.cvmodel")
    from safetensors.torch import save_file

    path = tmp_path / "future.cvmodel"
    save_file({"mean_image": torch.zeros(3, 40, 40)}, str(path),
              metadata={"format": "cellviewer-model", "format_version": "99",
                        "meta": json.dumps({"arch": "cnn", "classes": ["a"]})})
    with pytest.raises(ModelFileError, match="newer"):
        load_model_file(path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "m.cvmodel"
    _save(path, _model())
    mf = load_model_file(path)
    mf.meta["arch_kwargs"] = {"channels": [8, 8, 16, 32]}
    with pytest.raises(ModelFileError, match="do not fit"):
        build_model(mf)
