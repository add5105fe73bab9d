"""The lock's steps forced into the interleavings that broke it: another app (a real process) is
stopped at one step of taking the lock through the lock's test-only pause (``_test_pause``) while
this process takes the same lock; whatever the interleaving, exactly one of the two holds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cellviewer.core.project import lock as lock_module
from cellviewer.core.project.lock import ProjectInUseError, ProjectLock, lock_path_for

REPO = Path(__file__).resolve().parents[4]

PAUSED = textwrap.dedent("""
    import sys
    from pathlib import Path
    from cellviewer.core.project import lock as lock_module
    from cellviewer.core.project.lock import ProjectInUseError, ProjectLock
    project, steps = Path(sys.argv[1]), sys.argv[2].split(",")
    seen = set()

    def pause(name):
        if name in steps and name not in seen:
            seen.add(name)
            print("paused", flush=True)
            sys.stdin.readline()

    lock_module._test_pause = pause
    try:
        lock = ProjectLock.acquire(project, user="other")
        print("held" if lock.held else "not held: " + lock.reason, flush=True)
    except ProjectInUseError:
        print("in use", flush=True)
    sys.stdin.read()  # keep the lock until the test is done
""")


@pytest.fixture(autouse=True)
def _patient_waits(monkeypatch) -> None:
    """This process waits for a guard held by a paused app as long as the test takes to resume
    it (the real 3 s wait could run out on a loaded machine and change the interleaving)."""
    monkeypatch.setattr(lock_module, "TAKEOVER_WAIT_S", 120.0)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "demo.cvproj"
    path.write_bytes(b"")
    return path


def _stale_empty_lock(project: Path) -> Path:
    """An empty lock file left long ago by a crash of the create-then-write protocol."""
    lock_file = lock_path_for(project)
    lock_file.write_bytes(b"")
    then = time.time() - 3600
    os.utime(lock_file, (then, then))
    return lock_file


def _other_app_paused_at(project: Path, step: str) -> subprocess.Popen:
    other = subprocess.Popen([sys.executable, "-c", PAUSED, str(project), step],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=str(REPO)), bufsize=1)
    line = other.stdout.readline().strip()
    if line != "paused":
        other.kill()
        raise AssertionError(f"the other app did not stop at {step!r}: {line!r}")
    return other


def _resume(other: subprocess.Popen) -> str:
    other.stdin.write("\n")
    other.stdin.flush()
    return other.stdout.readline().strip()


def _finish(other: subprocess.Popen) -> None:
    other.stdin.close()
    other.wait(timeout=30)


@pytest.mark.parametrize("step", ["judged", "removed", "written"])
def test_an_app_stopped_mid_takeover_of_an_empty_lock_leaves_exactly_one_holder(project, step):
    """``judged``: the other app has judged the empty lock stale (the race of issue 14: the old
    protocol's re-check could not tell that empty file from this app's new, not yet written
    one). ``removed``: it removed the stale lock and has not linked its own yet. ``written``:
    its record waits in a temporary file. Here this app wins, and the other one must lose."""
    lock_file = _stale_empty_lock(project)
    other = _other_app_paused_at(project, step)
    try:
        mine = ProjectLock.acquire(project, user="me")
        assert mine.held and mine.still_held()
        assert _resume(other) == "in use"
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
        mine.release()
    finally:
        _finish(other)
    assert not lock_file.exists()


def test_an_app_holding_the_takeover_guard_makes_the_other_wait(project, monkeypatch):
    """The other app holds the guard and is about to remove the empty lock; this app, which has
    judged the same empty lock stale, waits for the guard and touches nothing meanwhile. Once
    the other app has removed the lock and let go of the guard (and is stopped before linking
    its own), this app takes the free lock and the other app loses: exactly one holder."""
    lock_file = _stale_empty_lock(project)
    other = _other_app_paused_at(project, "guarded,removed")
    judged = threading.Event()
    monkeypatch.setattr(lock_module, "_test_pause",
                        lambda name: judged.set() if name == "judged" else None)
    outcome: list[object] = []

    def take() -> None:
        try:
            outcome.append(ProjectLock.acquire(project, user="me"))
        except ProjectInUseError as e:
            outcome.append(e)

    taker = threading.Thread(target=take)
    try:
        taker.start()
        assert judged.wait(30)  # this app judged the empty lock stale, and wants the guard
        taker.join(0.5)
        # While the other app holds the guard, this app waits and the stale lock stays put.
        assert taker.is_alive() and outcome == []
        assert lock_file.read_bytes() == b""
        assert _resume(other) == "paused"  # removed the lock, let go of the guard
        taker.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], ProjectLock), outcome
        mine = outcome[0]
        assert mine.held and mine.still_held()
        assert _resume(other) == "in use"
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
        mine.release()
    finally:
        _finish(other)
    assert not lock_file.exists()


def test_a_lock_file_is_never_visible_empty_while_it_is_being_written(project):
    """The record is complete before the lock file exists: stopped after writing its record
    but before linking it, the other app has made no lock file at all."""
    other = _other_app_paused_at(project, "written")
    try:
        assert not lock_path_for(project).exists()
        assert _resume(other) == "held"
        record = json.loads(lock_path_for(project).read_text())
        assert record["pid"] == other.pid
    finally:
        _finish(other)


def test_a_takeover_guard_left_by_a_crash_does_not_block_and_is_removed(project):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file = _stale_empty_lock(project)
    guard = lock_file.with_name(lock_file.name + ".takeover")
    guard.write_text(json.dumps({"pid": dead.pid, "host": lock_module._host(),
                                 "app": "CellViewer", "started_at": "", "token": "x"}))
    lock = ProjectLock.acquire(project, user="me")
    assert lock.held and lock.took_over
    assert not guard.exists()
    lock.release()
    assert sorted(p.name for p in project.parent.iterdir()) == ["demo.cvproj"]
