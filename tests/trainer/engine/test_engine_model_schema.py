"""A model file is data from anyone: its options, field of view and tensors are checked against
its architecture's own schema before anything is built, and what does not fit is refused with
the ``bad-model`` error naming the file (issue 14, item 7)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_testdata import make_patchset

from trainer.cli import main
from trainer.engine.modelfile import expected_tensors, load_model_file, save_model_file
from trainer.formats.catalog import MODELS
from trainer.formats.errors import BadModelError, ModelFileError
from trainer.formats.model_header import read_model_header
from trainer.formats.protocol import ErrorKind, parse_line
from trainer.models import create_model, list_models, model_spec
from trainer.predict import Predictor

CLASSES = ["a", "b", "c"]
ARGS = {"channels": [4, 4, 8, 8]}  # a tiny CNN: 14 weight tensors, ~0.8 M parameters


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return create_model("cnn", len(CLASSES), **ARGS).state_dict()


def _write(path: Path, state: dict[str, torch.Tensor] | None = None, **meta_changes) -> Path:
    meta = {"arch": "cnn", "arch_kwargs": ARGS, "classes": CLASSES, "fov_px": 40.0,
            **meta_changes}
    save_model_file(path, state_dict=_state() if state is None else state,
                    mean_image=torch.rand(3, 40, 40), meta=meta)
    return path


def _small_state() -> dict[str, torch.Tensor]:
    return {"head.fc.weight": torch.zeros(3, 8)}


# name -> how to make a crafted file in a folder (each file is a few kilobytes)
CRAFTED = {
    # options within each bound but together far over the parameter cap (~400 M parameters)
    "huge-kwargs-mlp": lambda d: _write(d / "f.cvmodel", _small_state(), arch="mlp",
                                        arch_kwargs={"hidden": [6000, 6000, 6000]}),
    "huge-kwargs-vit": lambda d: _write(d / "f.cvmodel", _small_state(), arch="custom_vit",
                                        arch_kwargs={"dim": 1024, "depth": 24, "heads": 16,
                                                     "mlp_dim": 4096}),
    "width-out-of-range": lambda d: _write(d / "f.cvmodel", _small_state(),
                                           arch_kwargs={"channels": [100_000, 8, 8, 8]}),
    "unknown-option": lambda d: _write(d / "f.cvmodel", arch_kwargs={**ARGS, "evil": 1}),
    "option-of-wrong-type": lambda d: _write(d / "f.cvmodel",
                                             arch_kwargs={"channels": "4,4,8,8"}),
    "one-of-14-tensors": lambda d: _write(
        d / "f.cvmodel", dict(list(_state().items())[:1])),
    "one-tensor-missing": lambda d: _write(
        d / "f.cvmodel", dict(list(_state().items())[:-1])),
    "wrong-shape": lambda d: _write(
        d / "f.cvmodel", {**_state(), "head.fc.weight": torch.zeros(3, 7)}),
    "wrong-dtype": lambda d: _write(
        d / "f.cvmodel", {**_state(), "head.fc.bias": torch.zeros(3, dtype=torch.int32)}),
    "extra-tensor": lambda d: _write(d / "f.cvmodel", {**_state(), "evil": torch.zeros(2)}),
    "nan-weights": lambda d: _write(
        d / "f.cvmodel", {**_state(), "head.fc.weight": torch.full((3, 256), float("nan"))}),
    "inf-weights": lambda d: _write(
        d / "f.cvmodel", {**_state(), "head.fc.bias": torch.tensor([0.0, float("inf"), 0])}),
    "fov-huge": lambda d: _write(d / "f.cvmodel", fov_px=1e9),
    "fov-zero": lambda d: _write(d / "f.cvmodel", fov_px=0),
    "fov-text": lambda d: _write(d / "f.cvmodel", fov_px="40"),
    "classes-and-count-differ": lambda d: _write(d / "f.cvmodel", num_classes=9),
    "partial-scratch-model": lambda d: _write(
        d / "f.cvmodel", dict(list(_state().items())[:2]), partial_state=True),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_a_crafted_model_file_is_refused_as_bad_model_naming_it(tmp_path, name):
    path = CRAFTED[name](tmp_path)
    assert path.stat().st_size < 4_000_000
    with pytest.raises(BadModelError) as info:
        load_model_file(path)
    assert info.value.kind is ErrorKind.BAD_MODEL
    assert str(path) in str(info.value)
    with pytest.raises(ModelFileError):  # the app's catch-all for model files catches it too
        Predictor.load(path, device="cpu")


def test_the_app_refuses_a_bad_model_naming_the_file(tmp_path):
    """The app loads models through its predictor cache (in a worker thread): the same
    error, with the file name, reaches it."""
    pytest.importorskip("PySide6")
    from cellviewer.ui.common.tasks import describe_error
    from cellviewer.ui.predict.worker import PredictorCache

    path = CRAFTED["nan-weights"](tmp_path)
    with pytest.raises(BadModelError) as info:
        PredictorCache().get(path, "cpu")
    assert "f.cvmodel" in describe_error(info.value) and "not finite" in str(info.value)


def test_the_header_reader_refuses_fields_out_of_bounds_without_torch(tmp_path):
    path = CRAFTED["fov-huge"](tmp_path)
    with pytest.raises(BadModelError, match=r"f\.cvmodel: the field of view fov_px must be "):
        read_model_header(path)


def test_crafted_files_are_refused_before_anything_large_is_allocated(tmp_path):
    """Refused before the model is built: loading the huge-options files in a fresh process
    raises its peak memory by far less than their models would take (400 M parameters, 1.6 GB,
    for the MLP)."""
    paths = []
    for name in ("huge-kwargs-mlp", "huge-kwargs-vit", "width-out-of-range"):
        (tmp_path / name).mkdir()
        paths.append(str(CRAFTED[name](tmp_path / name)))
    script = textwrap.dedent("""
        import json, resource, sys
        from trainer.predict import Predictor
        import trainer.models
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kinds = []
        for p in sys.argv[1:]:
            try:
                Predictor.load(p, device="cpu")
                kinds.append("loaded")
            except Exception as exc:
                kinds.append(str(getattr(exc, "kind", type(exc).__name__)))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"kinds": kinds, "grew_mb": (after - before) / 1024}))
    """)
    out = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["grew_mb"] < 150, report
    assert report["kinds"] == ["bad-model"] * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_a_valid_file_loads_and_predicts(tmp_path, dtype):
    """Float tensors may be stored in another float dtype (the demo model's are float16)."""
    state = {k: v.to(dtype) for k, v in _state().items()}
    p = Predictor.load(_write(tmp_path / "ok.cvmodel", state), device="cpu")
    probs = p.predict(np.zeros((2, 40, 40, 3), np.uint8)).probs
    assert probs.shape == (2, 3) and np.isfinite(probs).all()


def test_a_model_whose_outputs_overflow_is_refused_not_predicted(tmp_path):
    """Finite weights near float32's limit give infinite logits and NaN probabilities: refused
    rather than written as a confident label."""
    state = _state()
    state["dense.4.bias"] = torch.full_like(state["dense.4.bias"], 1e3)  # features: tanh = 1
    state["head.fc.weight"] = torch.full_like(state["head.fc.weight"], 3e38)  # 256 x 3e38: inf
    p = Predictor.load(_write(tmp_path / "big.cvmodel", state), device="cpu")
    with pytest.raises(BadModelError, match=r"big\.cvmodel: the model's outputs are not numbers"):
        p.predict(np.full((2, 40, 40, 3), 200, np.uint8))


def test_trainer_predict_with_a_nan_model_exits_non_zero_with_an_error_event(tmp_path, capsys):
    model = CRAFTED["nan-weights"](tmp_path)
    ps = make_patchset(tmp_path / "ps.patches", n_per_class=2, classes=CLASSES)
    out = tmp_path / "pred.csv"
    code = main(["predict", "--model", str(model), "--patchset", str(ps), "--out", str(out),
                 "--device", "cpu"])
    captured = capsys.readouterr()
    assert code != 0
    events = [e for e in map(parse_line, captured.out.splitlines()) if e]
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "bad-model"
    assert "f.cvmodel" in events[-1]["message"]
    assert not out.exists()


def test_a_run_refuses_options_a_model_file_could_not_hold():
    """Every model file the trainer writes is one it can load: a run's model_args meet the same
    schema."""
    from trainer.engine.modelfile import check_model_options

    with pytest.raises(BadModelError, match="model 'cnn' has no option depth"):
        check_model_options("the run's model_args", "cnn", 3, {"depth": 3})


# ---- the schema itself -------------------------------------------------------------------------
def test_every_registered_model_declares_each_builder_option():
    for name in list_models():
        spec = model_spec(name)
        params = set(inspect.signature(spec.builder).parameters) - {"num_classes"}
        assert set(spec.schema.options) == params, name
        assert set(spec.model_kwargs) <= set(spec.schema.options), name


@pytest.mark.parametrize("info", MODELS, ids=lambda m: m.name)
def test_every_catalogue_model_fits_its_own_schema(info):
    """The study's models, with their defaults and the test stand-ins' options, are within
    bounds (built on the meta device: no memory)."""
    spec = model_spec(info.name)
    meta = {"arch": info.name, "classes": [f"c{i}" for i in range(16)],
            "arch_kwargs": dict(spec.model_kwargs)}
    expected = expected_tensors("catalogue", meta)
    assert info.params <= spec.schema.max_params
    assert expected["mean_image"] == ((3, 40, 40), "F32") and len(expected) > 1


def test_a_model_file_made_in_memory_is_checked_before_it_is_built():
    from trainer.engine.modelfile import ModelFile, build_model

    mf = ModelFile(meta={"arch": "mlp", "classes": CLASSES,
                         "arch_kwargs": {"hidden": [6000, 6000, 6000]}},
                   state_dict={}, mean_image=torch.zeros(3, 40, 40))
    with pytest.raises(BadModelError, match=r"more than the [\d,]+ this trainer allows"):
        build_model(mf)
    ok = ModelFile(meta={"arch": "cnn", "classes": CLASSES, "arch_kwargs": ARGS},
                   state_dict=_state(), mean_image=torch.zeros(3, 40, 40))
    assert build_model(ok).num_classes == 3
