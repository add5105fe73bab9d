"""The trainer subprocess class with a real child (a ``python -c`` stand-in that writes
protocol lines in pieces, logs to stderr, answers ``stop`` on stdin), and a real trainer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cellviewer.ui.common.tasks import BACKGROUND_NICE
from cellviewer.ui.common.trainer_process import TrainerProcess

# Writes two events split across writes (one line in three pieces, with a UTF-8 character cut
# in two), a line that is not protocol, a last event without its newline; waits for a line on
# stdin ("stop") and reports it as an event; logs on stderr; exits with code 3.
CHILD = r"""
import sys, time
out = sys.stdout.buffer
def put(b):
    out.write(b); out.flush(); time.sleep(0.05)
put(b'{"v": 1, "event": "started", "epo')
put(b'chs": 2, "name": "caf\xc3')
put(b'\xa9"}\nnot protocol\n{"v": 1, "event": "epoch", "epoch": 1}\n')
sys.stderr.write("[trainer] first log line\npartial "); sys.stderr.flush()
line = sys.stdin.readline().strip()
sys.stderr.write("stderr line\n"); sys.stderr.flush()
put(('{"v": 1, "event": "stopped", "reason": "%s"}' % line).encode())
sys.exit(3)
"""


def test_partial_lines_stop_line_stderr_tail_and_exit(qtbot, tmp_path: Path):
    proc = TrainerProcess(["-c", CHILD], tmp_path, program=sys.executable)
    events, logs, finished = [], [], []
    proc.protocol_event.connect(events.append)
    proc.log.connect(logs.append)
    proc.finished.connect(lambda code, crashed: finished.append((code, crashed)))
    assert proc.start() and proc.pid and proc.is_running()
    qtbot.waitUntil(lambda: len(events) == 2, timeout=20_000)
    assert events[0] == {"v": 1, "event": "started", "epochs": 2, "name": "café"}
    assert events[1]["event"] == "epoch"
    assert proc.lines.other_lines == ["not protocol"]
    proc.stop(grace_ms=20_000)  # the "stop" line on stdin
    qtbot.waitUntil(lambda: bool(finished), timeout=20_000)
    assert finished == [(3, False)] and not proc.is_running()
    assert events[-1] == {"v": 1, "event": "stopped", "reason": "stop"}  # no newline: flushed
    assert logs == ["[trainer] first log line", "partial stderr line"]
    assert proc.stderr_tail(1) == "partial stderr line"


def test_wait_hands_everything_out_without_the_event_loop(qtbot, tmp_path: Path):
    proc = TrainerProcess(["-c", "print('{\"v\": 1, \"event\": \"finished\"}')"], tmp_path,
                          program=sys.executable)
    events, finished = [], []
    proc.protocol_event.connect(events.append)
    proc.finished.connect(lambda code, crashed: finished.append(code))
    assert proc.start()
    assert proc.wait(20_000)  # no events processed meanwhile: wait delivered them itself
    assert [e["event"] for e in events] == ["finished"] and finished == [0]


def test_a_killed_child_is_reported_as_crashed(qtbot, tmp_path: Path):
    proc = TrainerProcess(["-c", "import sys; sys.stdin.read()"], tmp_path,
                          program=sys.executable)
    finished = []
    proc.finished.connect(lambda code, crashed: finished.append((code, crashed)))
    assert proc.start()
    proc.kill()
    qtbot.waitUntil(lambda: bool(finished), timeout=20_000)
    assert finished[0][1] is True


def test_a_program_that_cannot_start_says_so(tmp_path: Path):
    proc = TrainerProcess([], tmp_path, program=str(tmp_path / "no-such-program"))
    assert proc.start() is False and not proc.is_running()
    assert "Could not start the trainer" in proc.error


def test_the_real_trainer_runs_with_the_apps_environment(qtbot, tmp_path: Path):
    proc = TrainerProcess(["models", "--json"], tmp_path, protocol=False)
    assert proc.program == sys.executable and proc.args[:3] == ["-u", "-m", "trainer"]
    finished = []
    proc.finished.connect(lambda code, crashed: finished.append(code))
    assert proc.start()
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    assert finished == [0], proc.stderr_tail()


@pytest.mark.skipif(sys.platform == "win32", reason="nice values are POSIX")
def test_the_trainer_runs_below_the_gui_threads_priority(qtbot, tmp_path: Path, monkeypatch):
    """A training run on the CPU must leave the window responsive: the child (and the threads
    torch starts later, which inherit it) runs niced; the app keeps its own priority."""
    monkeypatch.delenv("CELLVIEWER_WORKER_NICE", raising=False)
    child = ("import os, sys; sys.stdin.readline(); "
             "print('{\"v\": 1, \"event\": \"nice\", \"value\": %d}' % os.nice(0), flush=True)")
    proc = TrainerProcess(["-c", child], tmp_path, program=sys.executable)
    events = []
    proc.protocol_event.connect(events.append)
    ours = os.nice(0)
    assert proc.start()
    assert proc.write_line("go")  # the child reads its nice value only after start() returned
    assert proc.wait(20_000)
    assert events == [{"v": 1, "event": "nice", "value": max(ours, BACKGROUND_NICE)}]
    assert os.nice(0) == ours
