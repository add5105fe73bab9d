"""The trainer as the desktop app runs it: a real ``python -m trainer train`` subprocess whose
stdout is read with the protocol's own LineBuffer; stop through stdin; resume."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from engine_testdata import TINY_CNN_ARGS, make_patchset

from trainer.formats.patchset import load_patchset
from trainer.formats.protocol import LineBuffer, parse_line, read_events
from trainer.predict import Predictor

REPO = Path(__file__).resolve().parents[3]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer", "train", *args]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _train_args(ps: Path, out: Path, epochs: int) -> list[str]:
    return ["--patchset", str(ps), "--out", str(out), "--model", "cnn",
            "--model-arg", f"channels={json.dumps(TINY_CNN_ARGS['channels'])}",
            "--epochs", str(epochs), "--batch-size", "32", "--threads", "1",
            "--device", "cpu", "--heartbeat", "1e-6"]  # a beat every step, however fast


@pytest.fixture(scope="module")
def patchset(tmp_path_factory):
    return make_patchset(tmp_path_factory.mktemp("engine-cli") / "train.patches")


def test_two_epochs_every_line_is_a_protocol_event(patchset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(_cmd(*_train_args(patchset, out, 2)), capture_output=True,
                          text=True, env=_env(), timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    events = [parse_line(line) for line in lines]
    bad = [ln for ln, e in zip(lines, events, strict=True) if e is None]
    assert not bad, bad
    kinds = [e["event"] for e in events]
    for needed in ("started", "batch", "epoch", "checkpoint", "stopped", "finished"):
        assert needed in kinds
    assert kinds[0] == "started" and kinds[-1] == "finished"
    started = events[0]
    assert started["classes"] == ["red", "green", "blue"]
    assert started["n_train"] == 48 and started["n_val"] == 12
    assert started["fast_path"] == "eager" and started["device"] == "cpu"
    assert started["n_train_augmented"] == started["steps_per_epoch"] * 32 + (
        started["n_train_augmented"] % 32)
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert 0 <= e["val_acc"] <= 1 and e["samples_per_s"] > 0 and e["lr"] > 0
    finished = events[-1]
    assert finished["reason"] == "finished"
    # the run folder: the same events, one metrics row per epoch, config and model files
    assert [e["event"] for e in read_events(out / "events.jsonl")] == kinds
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss") and len(rows) == 3
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    # the best model loads and predicts
    ps = load_patchset(patchset)
    p = Predictor.load(finished["model_path"], device="cpu")
    probs = p.predict(np.asarray(ps.patches[:5])).probs
    assert probs.shape == (5, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_stop_request_on_stdin_then_resume(patchset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(*_train_args(patchset, out, 40)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    buf, events, sent = LineBuffer(), [], False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        chunk = proc.stdout.read1(4096)
        if not chunk:
            break
        for ev in buf.feed(chunk):
            events.append(ev)
            if ev["event"] == "batch" and ev["epoch"] == 2 and not sent:
                proc.stdin.write(b"stop\n")
                proc.stdin.flush()
                sent = True
    events += buf.flush()
    assert proc.wait(timeout=30) == 0
    kinds = [e["event"] for e in events]
    assert sent and kinds[-2:] == ["stopped", "finished"]
    stopped = events[-2]
    assert stopped["reason"] == "stop-request"
    assert "of epoch 2" in stopped["detail"] and stopped["epoch"] == 1
    assert kinds.count("epoch") == 1  # it did not run on to more epochs
    assert (out / "last.cvmodel").is_file() and (out / "best.cvmodel").is_file()
    assert events[-1]["model_path"] == str(out / "best.cvmodel")

    # resume: continues in epoch 2 where it stopped, up to a new total of 2 epochs
    proc = subprocess.run(_cmd("--resume", str(out), "--epochs", "2"), capture_output=True,
                          text=True, env=_env(), timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = [parse_line(line) for line in proc.stdout.splitlines()]
    assert resumed[0]["event"] == "started" and resumed[0]["start_epoch"] == 2
    assert resumed[0]["resumed_from"] == str(out / "last.cvmodel")
    assert [e["epoch"] for e in resumed if e["event"] == "epoch"] == [2]
    first_batch = next(e for e in resumed if e["event"] == "batch")
    assert first_batch["step"] > 1  # started mid-epoch, not from step 0
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2"]
    assert resumed[-1]["event"] == "finished" and resumed[-1]["epochs_run"] == 2


def test_unknown_model_is_refused_before_any_work(patchset, tmp_path):
    out = tmp_path / "run"
    args = _train_args(patchset, out, 2)
    args[args.index("cnn")] = "resnet_d5"
    proc = subprocess.run(_cmd(*args), capture_output=True, text=True, env=_env(), timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    (event,) = [parse_line(line) for line in proc.stdout.splitlines()]
    assert event["event"] == "error" and event["kind"] == "unknown-model"
    assert "resnet_d5" in event["message"] and "resnet_d4" in event["message"]
    assert not out.exists()  # no run folder, nothing written


def test_a_bad_patch_set_is_an_error_event(tmp_path):
    (tmp_path / "broken.patches").mkdir()
    proc = subprocess.run(_cmd(*_train_args(tmp_path / "broken.patches", tmp_path / "run", 1)),
                          capture_output=True, text=True, env=_env(), timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    event = parse_line(proc.stdout.splitlines()[-1])
    assert event["kind"] == "bad-patchset" and "broken.patches" in event["message"]
