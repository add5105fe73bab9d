"""The project lock under real races: 8 processes take one project's lock at the same moment, 50
times over, from an empty lock file left by a crash, from the lock of a process that has died,
from a garbled file and from no file at all; exactly one of them may win each round.

The racers are long-lived processes running a tiny script that imports only the lock module (no
Qt, no torch), told by the test when to line up and released together by a "go" file, so a round
costs milliseconds rather than eight interpreter starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cellviewer.core.project.lock import lock_path_for

REPO = Path(__file__).resolve().parents[4]
N_RACERS = 8
N_ROUNDS = 50

RACER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from cellviewer.core.project import lock as lock_module
    from cellviewer.core.project.lock import ProjectInUseError, ProjectLock
    lock_module.TAKEOVER_WAIT_S = 60.0  # a loaded machine may stall a guard holder for seconds
    project, folder, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    lock = None
    for line in sys.stdin:
        word, _, arg = line.strip().partition(" ")
        if word == "round":
            go = folder / f"go-{arg}"
            print("ready", flush=True)
            while not go.exists():
                time.sleep(0.001)
            try:
                lock = ProjectLock.acquire(project, user=name)
                print("held" if lock.held else "not held: " + lock.reason, flush=True)
            except ProjectInUseError:
                print("in use", flush=True)
        elif word == "release":
            if lock is not None:
                lock.release()
                lock = None
            print("released", flush=True)
""")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _stale_state(kind: str, lock_file: Path, dead_pid: int) -> None:
    """What a crashed app left behind, written long ago."""
    if kind == "none":
        return
    if kind == "empty":
        lock_file.write_bytes(b"")
    elif kind == "garbled":
        lock_file.write_bytes(b'{"pid": 12')
    elif kind == "dead":
        lock_file.write_text(json.dumps({"pid": dead_pid, "host": os.uname().nodename,
                                         "user": "crashed", "app": "CellViewer",
                                         "started_at": "2025-03-04T12:30:00.000Z"}))
    then = time.time() - 3600
    os.utime(lock_file, (then, then))


def test_eight_apps_racing_fifty_rounds_let_exactly_one_win_each_round(tmp_path):
    project = tmp_path / "demo.cvproj"
    project.write_bytes(b"")
    lock_file = lock_path_for(project)
    dead_pid = _dead_pid()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(project), str(tmp_path),
                                f"u{i}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=REPO, env=env, bufsize=1)
              for i in range(N_RACERS)]
    kinds = ["empty", "dead", "garbled", "none", "empty"]  # the empty file twice as often
    failures = []
    try:
        for k in range(N_ROUNDS):
            kind = kinds[k % len(kinds)]
            _stale_state(kind, lock_file, dead_pid)
            for r in racers:
                r.stdin.write(f"round {k}\n")
                r.stdin.flush()
            assert [r.stdout.readline().strip() for r in racers] == ["ready"] * N_RACERS
            (tmp_path / f"go-{k}").touch()
            answers = [r.stdout.readline().strip() for r in racers]
            winners = [r for r, a in zip(racers, answers, strict=True) if a == "held"]
            if len(winners) != 1 or sorted(set(answers)) != ["held", "in use"]:
                failures.append((k, kind, answers))
            elif json.loads(lock_file.read_text())["pid"] != winners[0].pid:
                failures.append((k, kind, "the lock file names another process"))
            for r in racers:
                r.stdin.write("release\n")
                r.stdin.flush()
            assert [r.stdout.readline().strip() for r in racers] == ["released"] * N_RACERS
            assert not lock_file.exists(), f"round {k}: the winner's release left the lock"
    finally:
        for r in racers:
            r.stdin.close()
        for r in racers:
            r.wait(timeout=30)
    assert not failures, f"{len(failures)} of {N_ROUNDS} rounds without exactly one winner: " \
                         f"{failures[:5]}"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("demo.cvproj."))
    assert leftovers == [], leftovers
