"""Training on two processes: real ``torchrun --nproc-per-node 2 -m trainer train`` runs on the
CPU (gloo), read as the app reads them, stopped, resumed, and one rank killed.

The runs use the tiny CNN without dropout, so that a DDP run and a single-process run of the
same seed and global batch train the same model (up to float rounding): each rank steps its
half of every global batch and DDP averages the gradients. (With dropout the two draw
different masks; benchmarks/bench_ddp.py measures their agreement.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from engine_testdata import TINY_CNN_ARGS, make_patchset

from trainer.engine.distributed import Dist, from_env, rank_share
from trainer.engine.modelfile import read_model_meta
from trainer.formats.protocol import parse_line, read_events

REPO = Path(__file__).resolve().parents[3]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun")
EPOCHS = 8
NO_DROPOUT = {**TINY_CNN_ARGS, "input_dropout": 0.0, "hidden_dropout": 0.0}
linux_only = pytest.mark.skipif(not Path("/proc/self/task").is_dir(),
                                reason="finds torchrun's workers through /proc")


# ---- the share of each rank ------------------------------------------------------------------
def test_the_ranks_shares_are_the_global_batches_split_in_order():
    perm = np.random.default_rng(0).permutation(103)
    steps, batch, world = 103 // 12, 12, 3
    shares = [rank_share(perm, steps, batch, world, r) for r in range(world)]
    assert all(len(s) == steps * batch // world for s in shares)
    for step in range(steps):  # global step s = rank 0's part, rank 1's, rank 2's
        joined = np.concatenate([s[step * 4:(step + 1) * 4] for s in shares])
        assert np.array_equal(joined, perm[step * batch:(step + 1) * batch])


def test_torchrun_environment():
    assert not from_env({}).active
    assert not from_env({"WORLD_SIZE": "1", "RANK": "0"}).active
    d = from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (d.rank, d.world, d.local_rank, d.is_main) == (2, 4, 0, False)
    with pytest.raises(Exception, match="RANK=5"):
        from_env({"WORLD_SIZE": "2", "RANK": "5"})
    assert Dist(rank=0, world=3).val_slice(10) == slice(0, 3)
    assert Dist(rank=2, world=3).val_slice(10) == slice(7, 10)


# ---- real runs ------------------------------------------------------------------------------
def _args(ps: Path, out: Path) -> list[str]:
    return ["train", "--patchset", str(ps), "--out", str(out), "--model", "cnn",
            "--model-arg", f"channels={json.dumps(NO_DROPOUT['channels'])}",
            "--model-arg", "input_dropout=0", "--model-arg", "hidden_dropout=0",
            "--epochs", str(EPOCHS), "--batch-size", "32", "--threads", "1",
            "--device", "cpu", "--heartbeat", "0.05", "--json"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               TRAINER_DDP_TIMEOUT_S="60")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


class Torchrun:
    """``torchrun --nproc-per-node 2 -m trainer ARGS`` with its stdout read line by line."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with open(log, "w") as err:  # a file: a full stderr pipe would block the run
            self.proc = subprocess.Popen(
                [TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "trainer", *args],
                cwd=str(REPO), env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True, bufsize=1)
        self.events: list[dict] = []

    def until(self, want, timeout: float = 120.0) -> dict:
        """Read events until ``want(event)``; the event."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            ev = parse_line(line)
            assert ev is not None, f"not a protocol line: {line!r}"
            self.events.append(ev)
            if want(ev):
                return ev
        raise AssertionError(f"no such event; got {[e['event'] for e in self.events][-8:]}; "
                             f"stderr: {self.finish()[-3000:]}")

    def finish(self, timeout: float = 120.0) -> str:
        """Read the rest of stdout, wait for the end; torchrun's and the ranks' stderr."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self.events += [e for e in map(parse_line, rest.splitlines()) if e is not None]
        return self.log.read_text()

    def worker(self, rank: int) -> int:
        """The pid of the worker of ``rank`` (torchrun's children carry RANK)."""
        deadline = time.monotonic() + 120  # generous: torchrun starts its workers slowly
        while time.monotonic() < deadline:  # on a loaded machine
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                for pid in (task / "children").read_text().split():
                    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                    if f"RANK={rank}".encode() in env:
                        return int(pid)
            time.sleep(0.1)
        raise AssertionError(f"no worker of rank {rank}")


@pytest.fixture(scope="module")
def patchset(tmp_path_factory):
    return make_patchset(tmp_path_factory.mktemp("ddp") / "train.patches", n_per_class=40)


@pytest.fixture(scope="module")
def single(patchset, tmp_path_factory):
    """The same run in one process, uninterrupted."""
    from engine_testdata import tiny_config

    from trainer.engine.loop import run_training

    out = tmp_path_factory.mktemp("single") / "run"
    cfg = tiny_config(patchset, out, model_args=dict(NO_DROPOUT), epochs=EPOCHS,
                      heartbeat_s=10.0)
    assert run_training(cfg).status == "finished"
    return out


def _predict(model: Path, patchset: Path) -> np.ndarray:
    from trainer.formats.patchset import load_patchset
    from trainer.predict import Predictor

    x = np.asarray(load_patchset(patchset).patches)
    return Predictor.load(model, device="cpu").predict(x).probs


@pytest.mark.slow  # three torchrun launches of three Python processes each
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
@linux_only
def test_two_processes_stopped_resumed_killed_and_resumed_equal_one_process(
        patchset, single, tmp_path):
    out = tmp_path / "run"
    # 1. SIGTERM to rank 1 stops the run (rank 0 learns of it, saves, reports)
    run = Torchrun(_args(patchset, out), tmp_path / "1.log")
    started = run.until(lambda e: e["event"] == "started")
    assert started["processes"] == 2 and started["batch_size"] == 32
    assert started["batch_per_process"] == 16
    run.until(lambda e: e["event"] == "epoch")
    os.kill(run.worker(1), signal.SIGTERM)
    stopped = run.until(lambda e: e["event"] == "stopped")
    assert stopped["reason"] == "stop-request" and "rank 1" in stopped["detail"]
    log = run.finish()
    assert run.proc.returncode == 0, log[-3000:]
    assert run.events[-1]["event"] == "finished"
    # one run folder, written once: the events on stdout are those of events.jsonl
    assert [e["event"] for e in read_events(out / "events.jsonl")] == [
        e["event"] for e in run.events]
    assert (out / "config.json").is_file() and (out / "split.npz").is_file()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + stopped["epoch"]  # a header and one row per completed epoch

    # 2. resumed on two processes; "stop" on stdin (rank 0's) stops it mid-epoch
    run = Torchrun([*_args(patchset, out), "--resume"], tmp_path / "2.log")
    resumed = run.until(lambda e: e["event"] == "started")
    assert resumed["resumed_from"] == str(out / "last.cvmodel")
    run.until(lambda e: e["event"] == "batch" and e["step"] > 2)
    assert run.proc.stdin is not None
    run.proc.stdin.write("stop\n")
    run.proc.stdin.flush()
    stopped = run.until(lambda e: e["event"] == "stopped")
    assert stopped["reason"] == "stop-request" and "stdin" in stopped["detail"]
    run.finish()
    assert run.proc.returncode == 0
    meta = read_model_meta(out / "last.cvmodel")
    assert meta["train_state"]["epoch_complete"] is False  # mid-epoch: resumes at its step

    # 3. resumed again; rank 1 killed: an error event from rank 0, not a hang
    run = Torchrun([*_args(patchset, out), "--resume"], tmp_path / "3.log")
    run.until(lambda e: e["event"] == "epoch")
    os.kill(run.worker(1), signal.SIGKILL)
    error = run.until(lambda e: e["event"] == "error")
    assert error["kind"] == "rank-failed", error
    assert "--resume" in error["message"] and str(out) in error["message"]
    run.finish()
    assert run.proc.returncode != 0
    assert read_events(out / "events.jsonl")[-1]["event"] == "error"
    assert "train_state" in read_model_meta(out / "last.cvmodel")

    # 4. the last model resumes, here in one process, to the end
    from engine_testdata import tiny_config

    from trainer.engine.loop import run_training

    cfg = tiny_config(patchset, out, model_args=dict(NO_DROPOUT), epochs=EPOCHS,
                      heartbeat_s=10.0)
    result = run_training(cfg, resume_from=out / "last.cvmodel")
    assert result.status == "finished" and result.reason == "finished"
    assert read_events(out / "events.jsonl")[-1]["epochs_run"] == EPOCHS

    # the model: the one-process run's (same seed, same global batch, no dropout)
    ddp = _predict(out / "last.cvmodel", patchset)
    one = _predict(single / "last.cvmodel", patchset)
    assert np.abs(ddp - one).max() < 1e-3
    assert (ddp.argmax(1) == one.argmax(1)).all()
    ddp_eval = json.loads((out / "evaluation.json").read_text())
    one_eval = json.loads((single / "evaluation.json").read_text())
    assert abs(ddp_eval["macro_f1"] - one_eval["macro_f1"]) <= 0.01
