"""The project lock on real files, with real processes as the other owners: a live child holds
a project, a child that has exited left a stale lock, several children race for one lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cellviewer.core.project.lock import (
    PARTIAL_WRITE_GRACE_S,
    LockOwner,
    ProjectInUseError,
    ProjectLock,
    lock_path_for,
    pid_alive,
)
from cellviewer.core.store import ProjectError

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "demo.cvproj"
    path.write_bytes(b"")  # the lock never reads the project itself
    return path


@pytest.fixture
def live_pid():
    """The id of a real process that runs for the whole test (another CellViewer, as far as
    the lock can tell)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has run and exited (an app that crashed)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(project: Path, *, pid: int, host: str | None = None, user: str = "alice",
                started_at: str = "2025-03-04T12:30:00.000Z") -> bytes:
    data = json.dumps({"pid": pid, "host": host or socket.gethostname(), "user": user,
                       "app": "CellViewer", "started_at": started_at}).encode()
    lock_path_for(project).write_bytes(data)
    return data


def _backdate(path: Path, seconds: float = 3600) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_acquire_writes_the_owner_record_and_release_removes_it(project):
    lock = ProjectLock.acquire(project, user="bea")
    lock_file = project.with_name("demo.cvproj.lock")
    assert lock.held and lock.path == lock_file and not lock.took_over
    record = json.loads(lock_file.read_text())
    assert set(record) == {"pid", "host", "user", "app", "started_at"}
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert record["user"] == "bea" and record["app"] == "CellViewer"
    assert record["started_at"].endswith("Z") and record["started_at"][:4].isdigit()
    assert lock.still_held()
    lock.release()
    assert not lock_file.exists() and not lock.held
    lock.release()  # idempotent
    assert not lock_file.exists()


def test_a_lock_of_a_live_process_is_refused_naming_the_project_and_owner(project, live_pid):
    before = _write_lock(project, pid=live_pid)
    with pytest.raises(ProjectInUseError) as info:
        ProjectLock.acquire(project, user="bea")
    err = info.value
    assert isinstance(err, ProjectError)
    text = str(err)
    assert text.startswith(f"{project} is open in CellViewer by alice on {socket.gethostname()}")
    assert f"(process {live_pid}) since 2025-03-0" in text  # local time of 12:30 UTC
    assert (err.user, err.host, err.pid) == ("alice", socket.gethostname(), live_pid)
    assert err.started_at == "2025-03-04T12:30:00.000Z" and err.checkable
    assert err.owner.pid == live_pid and err.project_path == project
    assert lock_path_for(project).read_bytes() == before  # untouched


def test_a_lock_of_a_process_that_has_exited_is_taken_over(project, dead_pid):
    assert not pid_alive(dead_pid)
    _write_lock(project, pid=dead_pid)
    lock = ProjectLock.acquire(project, user="bea")
    assert lock.held and lock.took_over and not lock.forced
    assert lock.previous_owner is not None and lock.previous_owner.pid == dead_pid
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not lock.path.exists()


@pytest.mark.parametrize("content", [b"", b'{"pid": 12', b"\x00\x00\x00\x00", b"[1, 2]",
                                     b'{"pid": 0, "host": "x"}', b'{"pid": "7", "host": "x"}',
                                     b'{"pid": 7}'])
def test_an_empty_or_corrupt_lock_left_by_a_crash_is_taken_over(project, content):
    lock_file = lock_path_for(project)
    lock_file.write_bytes(content)
    _backdate(lock_file)  # written by a crash long ago, not being written now
    lock = ProjectLock.acquire(project, user="bea")
    assert lock.held and lock.took_over and lock.previous_owner is None
    assert json.loads(lock_file.read_text())["user"] == "bea"
    lock.release()


def test_a_lock_being_written_right_now_is_waited_for(project, live_pid):
    """An empty lock a moment old is another app between creating and writing it: wait and
    read its record rather than take it over."""
    lock_file = lock_path_for(project)
    lock_file.write_bytes(b"")
    writer = threading.Timer(0.3, lambda: _write_lock(project, pid=live_pid, user="carl"))
    writer.start()
    t0 = time.monotonic()
    with pytest.raises(ProjectInUseError, match="by carl"):
        ProjectLock.acquire(project, user="bea")
    writer.join()
    assert 0.25 < time.monotonic() - t0 < PARTIAL_WRITE_GRACE_S


def test_a_lock_from_another_host_is_refused_and_force_takes_it(project):
    _write_lock(project, pid=4242, host="scanner-room-pc", user="dana")
    with pytest.raises(ProjectInUseError) as info:
        ProjectLock.acquire(project, user="bea")
    assert "by dana on scanner-room-pc (process 4242)" in str(info.value)
    assert info.value.checkable is False
    lock = ProjectLock.acquire(project, user="bea", force=True)
    assert lock.held and lock.took_over and lock.forced
    assert lock.previous_owner.host == "scanner-room-pc"
    assert json.loads(lock.path.read_text())["user"] == "bea"
    lock.release()


def test_force_takes_a_live_lock_and_release_then_keeps_the_new_owners_lock(project, live_pid):
    mine = ProjectLock.acquire(project, user="bea")
    # Another app (the live child, as far as the file says) forces it over.
    theirs = _write_lock(project, pid=live_pid, user="carl")
    assert not mine.still_held()
    mine.release()
    assert lock_path_for(project).read_bytes() == theirs  # not ours any more: kept
    forced = ProjectLock.acquire(project, user="bea", force=True)
    assert forced.held and forced.forced and forced.previous_owner.user == "carl"
    forced.release()
    assert not lock_path_for(project).exists()


def test_release_tolerates_a_missing_file_and_the_lock_is_a_context_manager(project):
    with ProjectLock.acquire(project, user="bea") as lock:
        assert lock.path.exists()
        lock.path.unlink()  # someone tidied up
    assert not lock.held and not lock.path.exists()
    lock.release()


def test_the_same_process_shares_its_lock_until_the_last_holder_releases(project):
    first = ProjectLock.acquire(project, user="bea")
    again = ProjectLock.acquire(project, user="bea")  # e.g. a second window of this app
    assert again.held and not again.took_over
    first.release()
    assert again.path.exists() and again.still_held()
    again.release()
    assert not again.path.exists()


def test_a_leftover_lock_with_our_own_process_id_is_stale(project):
    """Process ids are reused (a container restarts with the same ids): a lock carrying ours
    that this process never wrote is an earlier process's."""
    _write_lock(project, pid=os.getpid(), user="earlier-me")
    lock = ProjectLock.acquire(project, user="bea")
    assert lock.held and lock.took_over and lock.previous_owner.user == "earlier-me"
    lock.release()


RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cellviewer.core.project.lock import ProjectInUseError, ProjectLock
    project, go = Path(sys.argv[1]), Path(sys.argv[2])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    try:
        lock = ProjectLock.acquire(project, user=sys.argv[3])
        print("held" if lock.held else "not held: " + lock.reason, flush=True)
    except ProjectInUseError:
        print("in use", flush=True)
    sys.stdin.read()  # keep the lock until the test has heard from everyone
""")


def test_apps_racing_for_a_stale_lock_let_exactly_one_win(project, dead_pid, tmp_path):
    _write_lock(project, pid=dead_pid)
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(project), str(go), f"u{i}"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               cwd=REPO) for i in range(4)]
    try:
        assert [r.stdout.readline().strip() for r in racers] == ["ready"] * len(racers)
        go.touch()  # all at the line: off they go
        answers = [r.stdout.readline().strip() for r in racers]
        assert sorted(answers) == ["held", "in use", "in use", "in use"], answers
        winner = racers[answers.index("held")]
        assert json.loads(lock_path_for(project).read_text())["pid"] == winner.pid
    finally:
        for r in racers:
            r.stdin.close()
            r.wait(timeout=10)
    assert not lock_path_for(project).exists()  # the winner's exit released it


PROBE_READ_ONLY = textwrap.dedent("""
    import os, sys
    from cellviewer.core.project.lock import ProjectLock
    if os.geteuid() == 0:  # root writes anywhere: look as 'nobody' instead
        os.setgid(65534)
        os.setuid(65534)
    lock = ProjectLock.acquire(sys.argv[1], user="bea")
    print(lock.held, lock.reason, sep="|")
""")


def test_a_read_only_folder_opens_without_a_lock():
    """A study on a write-protected share must still open: the lock says it could not lock."""
    folder = Path(tempfile.mkdtemp(prefix="cv-readonly-"))  # under /tmp so 'nobody' can enter
    try:
        project = folder / "study.cvproj"
        project.write_bytes(b"")
        folder.chmod(0o555)
        probe = subprocess.run([sys.executable, "-c", PROBE_READ_ONLY, str(project)],
                               capture_output=True, text=True, cwd=REPO, timeout=60)
        if probe.returncode != 0 and "Operation not permitted" in probe.stderr:
            pytest.skip("running as root without the right to drop to 'nobody'")
        assert probe.returncode == 0, probe.stderr
        held, reason = probe.stdout.strip().split("|", 1)
        assert held == "False"
        assert "cannot create the lock file" in reason and "study.cvproj.lock" in reason
        assert not lock_path_for(project).exists()
    finally:
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def test_the_owner_record_reads_back_and_refuses_nonsense():
    owner = LockOwner(pid=12, host="h", user="u", app="CellViewer",
                      started_at="2025-03-04T12:30:00.000Z")
    assert LockOwner.from_bytes(owner.to_bytes()) == owner
    assert LockOwner.from_bytes(b'{"pid": true, "host": "h"}') is None
    assert LockOwner.from_bytes(b'{"pid": -3, "host": "h"}') is None
    assert LockOwner.from_bytes(b'{"pid": 12, "host": ""}') is None
    assert pid_alive(os.getpid()) and not pid_alive(0) and not pid_alive(-1)
