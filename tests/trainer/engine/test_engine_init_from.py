"""Starting a run from a saved model (``init_from``): weights carried over, head rows by class
name, and the wrong model refused before any work."""

import json
import subprocess
import sys

import pytest
import torch
from engine_testdata import TINY_CNN_ARGS, make_patchset, tiny_config

from trainer.engine.events import EventSink
from trainer.engine.init_from import apply_initial_weights
from trainer.engine.loop import run_training
from trainer.engine.modelfile import load_model_file
from trainer.formats.protocol import parse_line
from trainer.models import create_model


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A 2-epoch tiny CNN on red/green/blue patches: the model a user would start from."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("init-from")
    ps = make_patchset(root / "train.patches", n_per_class=20)
    result = run_training(tiny_config(ps, root / "run1"), sink=EventSink())
    assert result.status == "finished", result.error
    return root, ps, result.best_path


def test_head_rows_follow_the_class_names(first_run):
    _, _, best = first_run
    mf = load_model_file(best)
    assert mf.classes == ["red", "green", "blue"]
    torch.manual_seed(1)
    model = create_model("cnn", 3, **TINY_CNN_ARGS)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = apply_initial_weights(model, mf, ["blue", "grey", "red"])
    assert (report.matched, report.new, report.dropped) == (["blue", "red"], ["grey"], ["green"])
    state = model.state_dict()
    head = [k for k in state if k.startswith("head.") and state[k].shape[0] == 3]
    assert head  # the classifier's weight and bias
    for key in head:
        torch.testing.assert_close(state[key][0], mf.state_dict[key][2])  # blue
        torch.testing.assert_close(state[key][2], mf.state_dict[key][0])  # red
        torch.testing.assert_close(state[key][1], fresh[key][1])  # grey keeps its fresh row
    body = next(k for k in state if not k.startswith("head.") and state[k].dtype.is_floating_point
                and state[k].numel() > 1)
    torch.testing.assert_close(state[body], mf.state_dict[body])
    assert not torch.equal(state[body], fresh[body])


def test_a_run_from_a_saved_model_starts_where_it_left_off(first_run):
    root, ps, best = first_run
    sink = EventSink()
    result = run_training(tiny_config(ps, root / "run2", epochs=1, init_from=str(best), lr=1e-4),
                          sink=sink)
    assert result.status == "finished", result.error
    started = next(e for e in sink.history if e["event"] == "started")
    assert started["init_from"] == str(best)
    assert started["init_classes_matched"] == ["red", "green", "blue"]
    assert started["init_classes_new"] == []
    notices = [e["message"] for e in sink.history if e["event"] == "notice"]
    assert any("3 of 3 classes carried over" in m for m in notices)
    first_epoch = next(e for e in sink.history if e["event"] == "epoch")
    before = load_model_file(best).meta["metrics"]["val_acc"]
    # one epoch at a small learning rate from the saved model cannot lose what it knew
    assert first_epoch["val_acc"] >= before - 0.1
    saved = json.loads((root / "run2" / "config.json").read_text())
    assert saved["init_from"] == str(best)  # a repeat of the run starts from it too


def test_a_model_of_another_architecture_is_refused_before_any_work(first_run, tmp_path):
    root, ps, best = first_run
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--patchset", str(ps), "--out", str(out),
         "--model", "mlp", "--init-from", str(best), "--epochs", "1", "--device", "cpu"],
        capture_output=True, text=True, timeout=120)
    events = [e for e in map(parse_line, proc.stdout.splitlines()) if e is not None]
    assert proc.returncode != 0
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "bad-config"
    assert str(best) in events[-1]["message"] and "'cnn'" in events[-1]["message"]
    assert not any(e["event"] == "started" for e in events)


def test_other_model_options_are_refused_naming_the_tensor(first_run, tmp_path):
    root, ps, best = first_run
    cfg = tiny_config(ps, tmp_path / "run", init_from=str(best),
                      model_args={"channels": [8, 8, 16, 32]})
    result = run_training(cfg, sink=EventSink())
    assert result.status == "error"
    assert "model options differ" in result.error and str(best) in result.error


def test_a_missing_file_is_refused_naming_it(first_run, tmp_path):
    _, ps, _ = first_run
    missing = tmp_path / "gone.cvmodel"
    result = run_training(tiny_config(ps, tmp_path / "run", init_from=str(missing)),
                          sink=EventSink())
    assert result.status == "error" and str(missing) in result.error
    assert not list(tmp_path.rglob("config.json"))  # refused before the run folder was made
