"""The Qt-free run registry: where runs live, their status from events.jsonl and run.json,
interrupted detection, repeat and the trainer command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cellviewer.core.training import runs
from cellviewer.core.training.runs import RunRegistry, run_status
from trainer.formats.protocol import encode_event


def _write_events(run: runs.Run, *events: tuple[str, dict], torn: str = "") -> None:
    with open(run.events_path, "a", encoding="utf-8") as fh:
        for name, fields in events:
            fh.write(encode_event(name, **fields) + "\n")
        fh.write(torn)


def test_runs_live_next_to_the_project_file(tmp_path: Path):
    project = tmp_path / "study" / "colon.cvproj"
    assert runs.runs_root(project) == tmp_path / "study" / "colon.runs"
    reg = RunRegistry(project)
    assert reg.runs() == []
    a = reg.create("cnn 4096 / first try")
    b = reg.create("cnn 4096 / first try")
    assert a.folder == tmp_path / "study" / "colon.runs" / "cnn_4096_first_try"
    assert b.name == "cnn_4096_first_try-2"
    assert [r.name for r in reg.runs()] == [a.name, b.name]
    assert json.loads((a.folder / "run.json").read_text())["name"] == a.name
    assert reg.get(b.name).folder == b.folder
    with pytest.raises(runs.RunError, match="no such run"):
        reg.get("nope")


def test_a_damaged_run_json_hides_only_that_run(tmp_path: Path):
    reg = RunRegistry(tmp_path / "p.cvproj")
    good = reg.create("good")
    bad = reg.create("bad")
    bad.run_file.write_text("{not json")
    assert [r.name for r in reg.runs()] == [good.name]
    with pytest.raises(runs.RunError, match="run.json: not valid JSON"):
        reg.get("bad")


@pytest.mark.parametrize(
    ("meta", "events", "alive", "expected"),
    [
        ({}, [], None, runs.CREATED),
        ({"launched_at": "t"}, [("started", {})], True, runs.RUNNING),
        ({"launched_at": "t"}, [("started", {})], False, runs.INTERRUPTED),
        ({"launched_at": "t", "ended_at": "t"}, [("started", {})], False, runs.FAILED),
        ({"launched_at": "t", "app_status": "failed"}, [("started", {})], False, runs.FAILED),
        ({"launched_at": "t"}, [("started", {}), ("stopped", {"reason": "finished"}),
                                ("finished", {"model_path": "m"})], False, runs.FINISHED),
        ({"launched_at": "t"}, [("started", {}), ("stopped", {"reason": "early-stop"}),
                                ("finished", {})], False, runs.FINISHED),
        ({"launched_at": "t"}, [("started", {}), ("stopped", {"reason": "stop-request"}),
                                ("finished", {})], False, runs.STOPPED),
        ({"launched_at": "t", "app_status": "interrupted"},
         [("started", {}), ("stopped", {"reason": "stop-request"})], False, runs.INTERRUPTED),
        ({"launched_at": "t"}, [("started", {}), ("error", {"kind": "out-of-memory",
                                                            "message": "m"})], False, runs.FAILED),
        # a resumed run: the old attempt's stopped event no longer decides
        ({"launched_at": "t"}, [("started", {}), ("stopped", {"reason": "stop-request"}),
                                ("finished", {}), ("started", {"start_epoch": 3})], True,
         runs.RUNNING),
    ],
)
def test_status_from_events_and_app_record(meta, events, alive, expected):
    evs = [{"event": name, **fields} for name, fields in events]
    assert run_status(meta, evs, alive) == expected


def test_status_reads_the_files_and_skips_a_torn_last_line(tmp_path: Path):
    reg = RunRegistry(tmp_path / "p.cvproj")
    run = reg.create("r")
    assert run.status() == runs.CREATED
    run.mark_launched(pid=999_999_999)
    _write_events(run, ("started", {"epochs": 2}), ("epoch", {"epoch": 1, "val_acc": 0.5}),
                  torn='{"v":1,"event":"epoch","epo')
    assert len(run.events()) == 2
    # the recorded pid is not a live process: the app went away mid-run
    assert reg.get("r").status() == runs.INTERRUPTED
    run.mark_ended(exit_code=-9, crashed=True)
    assert reg.get("r").status() == runs.FAILED


def test_process_alive_follows_a_real_process_and_ignores_a_reused_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    token = runs.process_token(proc.pid)
    try:
        # alive from the moment the spawn returned: no wait for an exec or a command line
        assert runs.process_alive(proc.pid, token)
        assert runs.pid_alive(proc.pid)
        if token is not None:  # Linux: a later process given the same id is not this one
            assert not runs.process_alive(proc.pid, str(int(token) - 1))
    finally:
        proc.kill()
        proc.wait()
    assert not runs.process_alive(proc.pid, token)
    assert not runs.process_alive(None) and not runs.process_alive(0)


def test_a_just_launched_run_is_running_before_its_first_event(tmp_path: Path):
    """The cause of runs read as "interrupted" while their trainer started: the status looked
    for "trainer" in the pid's command line, which before the exec is still the app's. Now
    the pid and its start token are recorded at spawn and decide alone."""
    from cellviewer.core.project import lock as project_lock

    assert runs.pid_alive is project_lock.pid_alive  # one pid_alive in the app
    run = RunRegistry(tmp_path / "p.cvproj").create("r")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        run.mark_launched(child.pid)
        assert run.events() == []
        assert run.status() == runs.RUNNING
        assert RunRegistry(tmp_path / "p.cvproj").get("r").status() == runs.RUNNING
        assert run.meta["pid_token"] == runs.process_token(child.pid)
    finally:
        child.communicate(b"")
    # it ended without a word and nobody saw it end: the app went away mid-run
    assert run.reload().status() == runs.INTERRUPTED


def test_summary_joins_attempts_and_finds_the_model(tmp_path: Path):
    reg = RunRegistry(tmp_path / "p.cvproj")
    run = reg.create("r")
    (run.folder / "best.safetensors").write_bytes(b"x")
    _write_events(
        run,
        ("started", {"epochs": 3, "classes": ["a", "b"]}),
        ("epoch", {"epoch": 1, "val_acc": 0.4}), ("epoch", {"epoch": 2, "val_acc": 0.5}),
        ("stopped", {"reason": "stop-request"}),
        ("started", {"epochs": 3, "start_epoch": 2, "classes": ["a", "b"]}),
        ("epoch", {"epoch": 2, "val_acc": 0.55}), ("epoch", {"epoch": 3, "val_acc": 0.6}),
        ("finished", {"model_path": str(run.folder / "best.safetensors")}),
    )
    s = run.summary()
    assert [e["val_acc"] for e in s.epochs] == [0.4, 0.55, 0.6]  # epoch 2 rerun replaces
    assert s.stopped is None and s.finished is not None
    assert s.total_epochs == 3 and s.classes == ["a", "b"]
    assert run.model_path() == run.folder / "best.safetensors"


def test_repeat_copies_config_and_patch_set(tmp_path: Path):
    reg = RunRegistry(tmp_path / "p.cvproj")
    run = reg.create("first", classes=["a", "b"], images=[1, 2])
    run.patchset_path.mkdir()
    (run.patchset_path / "meta.json").write_text("{}")
    cfg = {"patchset": str(run.patchset_path), "out_dir": str(run.folder), "model": "cnn",
           "epochs": 2, "seed": 7}
    runs.write_json_atomic(run.config_path, cfg)
    new = reg.repeat(run)
    assert new.name == "first-repeat"
    new_cfg = new.config()
    assert new_cfg["out_dir"] == str(new.folder)
    assert new_cfg["patchset"] == str(new.patchset_path)
    assert (new.patchset_path / "meta.json").is_file()
    assert {k: v for k, v in new_cfg.items() if k not in ("out_dir", "patchset")} == {
        "model": "cnn", "epochs": 2, "seed": 7}
    assert new.meta["repeat_of"] == "first" and new.meta["classes"] == ["a", "b"]
    assert new.status() == runs.CREATED


def test_config_missing_is_a_clear_error(tmp_path: Path):
    run = RunRegistry(tmp_path / "p.cvproj").create("r")
    with pytest.raises(runs.RunError, match="config.json: missing"):
        run.config()


def test_trainer_command_same_python_or_frozen_app(monkeypatch, tmp_path: Path):
    cfg = tmp_path / "config.json"
    program, args = runs.trainer_command(cfg)
    assert program == sys.executable
    assert args[-5:] == ["-m", "trainer", "train", "--config", str(cfg)]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    program, args = runs.trainer_command(cfg, ["--resume", "x"])
    assert program == sys.executable
    assert args == ["--run-trainer", "train", "--config", str(cfg), "--resume", "x"]


def test_trainer_invocation_runs_any_trainer_command(monkeypatch, tmp_path: Path):
    program, args = runs.trainer_invocation(["robustness", "--model", "m.cvmodel"])
    assert (program, args) == (sys.executable,
                               ["-u", "-m", "trainer", "robustness", "--model", "m.cvmodel"])
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert runs.trainer_invocation(["models"]) == (sys.executable, ["--run-trainer", "models"])


def test_robustness_args_name_the_best_model_and_the_run_folder(tmp_path: Path):
    run = RunRegistry(tmp_path / "p.cvproj").create("r")
    with pytest.raises(runs.RunError, match="no model file to measure"):
        runs.robustness_args(run)
    (run.folder / "best.cvmodel").write_bytes(b"x")
    _write_events(run, ("started", {}), ("finished", {"model_path": "best.cvmodel"}))
    assert runs.robustness_args(run) == ["robustness", "--model",
                                         str(run.folder / "best.cvmodel"), "--out",
                                         str(run.folder)]


def test_read_robustness_and_its_figures(tmp_path: Path):
    assert runs.read_robustness(tmp_path) is None  # not measured
    report = {"n": 10, "clean_accuracy": 0.8, "clean_macro_f1": 0.7, "rows": [
        {"mode": "post", "sigma": 0.8, "accuracy": 0.7, "macro_f1": 0.55,
         "delta_accuracy": -0.1, "delta_macro_f1": -0.15},
        {"mode": "pre", "sigma": 0.8, "accuracy": 0.75, "macro_f1": 0.65,
         "delta_accuracy": -0.05, "delta_macro_f1": -0.05}]}
    path = tmp_path / runs.ROBUSTNESS_FILE
    path.write_text(json.dumps(report))
    read = runs.read_robustness(tmp_path)
    assert runs.robustness_value(read, 0.8) == pytest.approx(-0.15)
    assert runs.robustness_value(read, 0.8, "pre", "macro_f1") == pytest.approx(0.65)
    assert runs.robustness_value(read, 0.4) is None
    path.write_text('{"rows": [')
    with pytest.raises(runs.RunError, match="robustness.json: not valid JSON"):
        runs.read_robustness(tmp_path)
    path.write_text(json.dumps({**report, "rows": [{"mode": "sideways", "sigma": 1}]}))
    with pytest.raises(runs.RunError, match="row 1 of 'rows' needs a mode"):
        runs.read_robustness(tmp_path)
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(runs.RunError, match="'clean_accuracy' is not a number"):
        runs.read_robustness(tmp_path)


def test_a_moved_run_finds_its_model_and_resumes_in_place(tmp_path: Path):
    old = RunRegistry(tmp_path / "a" / "p.cvproj").create("r")
    old.patchset_path.mkdir()
    (old.folder / runs.LAST_MODEL).write_bytes(b"x")
    (old.folder / "best.cvmodel").write_bytes(b"x")
    runs.write_json_atomic(old.config_path, {"patchset": str(old.patchset_path),
                                             "out_dir": str(old.folder), "model": "cnn"})
    _write_events(old, ("started", {}), ("finished", {"model_path": str(old.folder /
                                                                       "best.cvmodel")}))
    import shutil

    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))  # the user moved the project
    run = RunRegistry(tmp_path / "b" / "p.cvproj").get("r")
    assert run.model_path() == run.folder / "best.cvmodel"
    assert runs.resume_args(run) == ["--resume"]
    cfg = run.config()
    assert cfg["out_dir"] == str(run.folder) and cfg["patchset"] == str(run.patchset_path)
    (run.folder / runs.LAST_MODEL).unlink()
    assert not runs.can_resume(run)
    with pytest.raises(runs.RunError, match="repeat the run instead"):
        runs.resume_args(run)
