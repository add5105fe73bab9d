"""What "done" means for sweeps, with real processes on the CPU: a sweep of 2 models x 2
FlagLimits (one seed: the seeds are only more of the same grid, and ``test_sweep_grid`` covers
them) on a tiny patch set is killed mid-run (SIGKILL to its process group),
resumed (the finished run skipped, the interrupted one continued from its last model file),
and reported with every section; the same sweep run as 2 shards (one of them with 2 worker
processes) and merged gives the same results."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_testdata import make_patchset, spec_dict

from trainer.formats.protocol import parse_line, read_events
from trainer.sweep.run import COMPLETE, RESUMABLE, run_state

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               CELLVIEWER_CPU_BACKEND="torch")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _sweep(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer", "sweep", *args]


def _events(text: str) -> list[dict]:
    return [e for e in (parse_line(line) for line in text.splitlines()) if e]


def _results(path: Path) -> dict[str, dict]:
    with open(path, newline="") as fh:
        return {r["run_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep-e2e")
    train = make_patchset(d / "train.patches")
    test = make_patchset(d / "test.patches", seed=1, scale=0.5)
    spec = d / "spec.json"
    spec_dict_ = spec_dict(train, test, sigmas=[1.6], seeds=[1])
    spec_dict_["train"]["epochs"] = 3
    spec.write_text(json.dumps(spec_dict_))
    return d, spec


def test_killed_resumed_reported_and_sharded(data, tmp_path):
    d, spec = data
    out = tmp_path / "sweep"
    # 1. start the sweep and kill it hard once the second run has saved its first epoch
    proc = subprocess.Popen(_sweep(str(spec), "--out", str(out)), stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=_env(),
                            start_new_session=True)
    assert proc.stdout is not None
    order, victim = [], None
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        e = parse_line(line) or {}
        if e.get("event") == "sweep_started":
            order = e["run_ids"]
            assert len(order) == 4 and e["grid"] == 4
        if e.get("event") == "epoch" and e["run_id"] == order[1] and e["epoch"] == 1:
            victim = out / "runs" / order[1]
            while not (victim / "last.cvmodel").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "the sweep did not reach its second run"
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and victim is not None
    assert run_state(out / "runs" / order[0]) == COMPLETE
    assert run_state(victim) == RESUMABLE
    assert not (out / "runs" / order[2]).exists()

    # 2. the same command again: the complete run is skipped, the killed one resumed
    done = subprocess.run(_sweep(str(spec), "--out", str(out)), capture_output=True, text=True,
                          env=_env(), timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    events = _events(done.stdout)
    started = events[0]
    assert started["event"] == "sweep_started" and started["complete"] == 1
    assert started["resumable"] == 1
    states = {e["run_id"]: e["state"] for e in events if e["event"] == "run_started"}
    assert order[0] not in states and states[order[1]] == "resumable"
    assert {states[r] for r in order[2:]} == {"fresh"}
    assert events[-1]["event"] == "sweep_finished" and events[-1]["complete"] == 3
    starts = [e for e in read_events(victim / "events.jsonl") if e["event"] == "started"]
    assert len(starts) == 2 and starts[1]["start_epoch"] == 2
    assert starts[1]["resumed_from"].endswith("last.cvmodel")
    assert json.loads((victim / "sweep_run.json").read_text())["resumed"] is True
    rows = _results(out / "results.csv")
    assert sorted(rows) == sorted(order)
    for r in rows.values():
        for key in ("val_macro_f1", "test_macro_f1", "val_weighted_f1", "val_macro_f1_common",
                    "blur_post_d_macro_f1_1.6", "drop_slope_post", "params", "gflops",
                    "latency_b1_ms", "train_s", "val_f1_red", "test_f1_green"):
            assert r[key] != "", (r["run_id"], key)
        assert 0 <= float(r["val_macro_f1"]) <= 1 and float(r["gflops"]) > 0
    # FlagLimit 64 keeps every cell: it ran as "all"
    assert {r["flag_limit"] for r in rows.values()} == {"16", "all"}
    assert {r["covers"] for r in rows.values() if r["flag_limit"] == "all"} == {"64"}

    # 3. the report has every section, its figures embedded and beside it
    from trainer.sweep.report import write_report

    report = tmp_path / "report" / "report.html"
    files = write_report(out, report)
    text = report.read_text()
    for section in ("Summary", "Table 3", "Figure 2", "Table 4", "Table 5", "Figure 4",
                    "Figure 5", "Confusion matrix of the best model"):
        assert f"<h2>{section}" in text, section
    assert text.count("data:image/png;base64,") == 4
    assert "At FlagLimit 16," in text and "test macro-F1" in text
    for f in files:
        assert f.is_file() and f.stat().st_size > 0
    assert {f.name for f in files} >= {"report-figure2-scaling.png", "report-table3.csv",
                                       "report-confusion-best.png"}

    # 4. two shards as two processes (the second with 2 workers), merged: the same results
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    procs = [subprocess.Popen(_sweep(str(spec), "--out", str(shards[i]), "--shard", f"{i}/2",
                                     *(["--parallel", "2"] if i else [])),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(), stdin=subprocess.DEVNULL) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    ids = [[e["run_ids"] for e in _events(o) if e["event"] == "sweep_started"][0]
           for o, _ in outs]
    assert sorted(ids[0] + ids[1]) == sorted(order) and not set(ids[0]) & set(ids[1])
    assert any(e.get("run_id") and e["event"] == "epoch" for e in _events(outs[1][0]))
    merged = tmp_path / "merged"
    m = subprocess.run([sys.executable, "-m", "trainer", "sweep-merge", str(merged),
                        *map(str, shards)], capture_output=True, text=True, env=_env(),
                       timeout=120)
    assert m.returncode == 0, m.stderr
    again = _results(merged / "results.csv")
    assert sorted(again) == sorted(rows)
    for run_id, r in again.items():
        assert r["flag_limit"] == rows[run_id]["flag_limit"]
        assert r["n_train"] == rows[run_id]["n_train"]
        if run_id != order[1]:  # the resumed run drew other dropout masks after its restart
            assert r["val_macro_f1"] == rows[run_id]["val_macro_f1"], run_id
            assert r["test_macro_f1"] == rows[run_id]["test_macro_f1"], run_id
