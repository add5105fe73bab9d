"""The training options under torchrun (two CPU processes, gloo): stain jitter and label
smoothing train the same model as one process (jitter rows are drawn per sample, not per rank);
mixup, CutMix and class weights run to the end and are recorded in the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_testdata import TINY_CNN_ARGS, make_patchset, tiny_config

from trainer.engine.loop import run_training
from trainer.engine.modelfile import read_model_meta
from trainer.formats.protocol import read_events

REPO = Path(__file__).resolve().parents[3]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun")
NO_DROPOUT = {**TINY_CNN_ARGS, "input_dropout": 0.0, "hidden_dropout": 0.0}
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")]


def _torchrun(ps: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               TRAINER_DDP_TIMEOUT_S="60")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    args = ["train", "--patchset", str(ps), "--out", str(out), "--model", "cnn",
            "--model-arg", f"channels={json.dumps(NO_DROPOUT['channels'])}",
            "--model-arg", "input_dropout=0", "--model-arg", "hidden_dropout=0",
            "--epochs", "3", "--batch-size", "32", "--threads", "1", "--device", "cpu",
            "--heartbeat", "1", "--json", *extra]
    return subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "trainer",
                           *args], cwd=str(REPO), env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def _probs(model: Path, ps: Path) -> np.ndarray:
    from trainer.formats.patchset import load_patchset
    from trainer.predict import Predictor

    return Predictor.load(model, device="cpu").predict(
        np.asarray(load_patchset(ps).patches)).probs


@pytest.fixture(scope="module")
def patchset(tmp_path_factory):
    return make_patchset(tmp_path_factory.mktemp("ddp-opts") / "train.patches", n_per_class=40)


def test_jitter_and_smoothing_on_two_processes_equal_one(patchset, tmp_path):
    ddp = tmp_path / "ddp"
    proc = _torchrun(patchset, ddp, "--color-jitter", "0.1", "--label-smoothing", "0.1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "one"
    cfg = tiny_config(patchset, one, model_args=dict(NO_DROPOUT), epochs=3, heartbeat_s=10.0,
                      color_jitter=0.1, label_smoothing=0.1)
    assert run_training(cfg, log=lambda m: None).status == "finished"
    a, b = _probs(ddp / "last.cvmodel", patchset), _probs(one / "last.cvmodel", patchset)
    assert np.abs(a - b).max() < 1e-3


def test_mixing_and_class_weights_on_two_processes_finish(patchset, tmp_path):
    out = tmp_path / "ddp"
    proc = _torchrun(patchset, out, "--mixup", "0.4", "--cutmix", "1",
                     "--class-balanced-loss", "inverse")
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_events(out / "events.jsonl")
    assert events[0]["processes"] == 2 and events[-1]["event"] == "finished"
    assert len([e for e in events if e["event"] == "epoch"]) == 3
    meta = read_model_meta(out / "last.cvmodel")
    assert (meta["config"]["mixup"], meta["config"]["cutmix"],
            meta["config"]["class_balance"]) == (0.4, 1.0, "inverse")
