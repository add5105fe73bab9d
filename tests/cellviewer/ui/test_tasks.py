"""The task runner (cellviewer.ui.common.tasks): a work function is a plain function with a
TaskState, run and tested without Qt; with Qt, the three policies (pool, newest wins,
dedicated thread) deliver on the UI thread."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from cellviewer.ui.common.tasks import (
    BACKGROUND_NICE,
    DEDICATED,
    NEWEST,
    POOL,
    TaskRunner,
    TaskState,
)


def count_to(n: int, state: TaskState) -> list[int]:
    """A work function: reports progress and partial results, stops when asked."""
    seen = []
    for i in range(n):
        if state.is_interruption_requested():
            state.set_status("cancelled")
            return seen
        seen.append(i)
        state.set_partial_result(list(seen))
        state.set_progress((i + 1) / n)
    state.set_status("done")
    return seen


# --- without Qt -------------------------------------------------------------------------------
def test_a_work_function_runs_with_a_plain_state():
    progress, partial = [], []
    state = TaskState(on_progress=progress.append, on_partial=partial.append)
    assert count_to(4, state) == [0, 1, 2, 3]
    assert progress == [0.25, 0.5, 0.75, 1.0] and partial[-1] == [0, 1, 2, 3]
    assert state.status == "done" and state.progress == 1.0


def test_interruption_stops_a_work_function():
    state = TaskState()
    state.request_interruption()
    assert count_to(4, state) == [] and state.status == "cancelled"
    assert state.interruption_event.is_set()


# --- with Qt ----------------------------------------------------------------------------------
def test_pool_delivers_results_progress_and_errors_on_the_ui_thread(qtbot):
    runner = TaskRunner(POOL, 2)
    main = threading.get_ident()
    done, progress, errors, threads = [], [], [], []

    def record(value):
        threads.append(threading.get_ident())
        done.append(value)

    runner.start(count_to, 3, done=record, progress=progress.append)
    runner.start(lambda state: 1 / 0, failed=errors.append)
    qtbot.waitUntil(lambda: bool(done and errors), timeout=10_000)
    assert done == [[0, 1, 2]] and progress == [pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]
    assert errors == ["ZeroDivisionError: division by zero"]
    assert threads == [main] and runner.pending() == 0
    assert runner.wait(5000)


def test_pool_cancels_a_job_that_has_not_started(qtbot):
    runner = TaskRunner(POOL, 1)
    gate = threading.Event()
    results = []
    first = runner.start(lambda state: gate.wait(10), done=results.append)
    second = runner.start(lambda state: "never", done=results.append)
    assert second.cancel() is True  # still waiting behind the first: it never runs
    assert runner.pending() == 1
    gate.set()
    qtbot.waitUntil(lambda: results == [True], timeout=10_000)
    assert first.cancel() is False and runner.wait(5000) and results == [True]


def test_newest_wins_drops_waiting_and_stale_results(qtbot):
    runner = TaskRunner(NEWEST)
    started, gate = threading.Event(), threading.Event()
    results, interrupted = [], []

    def slow(state: TaskState) -> str:
        started.set()
        gate.wait(10)
        interrupted.append(state.is_interruption_requested())
        return "stale"

    runner.start(slow, done=results.append)
    assert started.wait(10)
    runner.start(lambda state: "waiting", done=results.append)  # replaced before it starts
    newest = runner.start(lambda state: "newest", done=results.append)
    assert runner.latest_token == newest.token and not runner.is_idle()
    gate.set()
    qtbot.waitUntil(runner.is_idle, timeout=10_000)
    assert results == ["newest"]  # the running one's result was dropped, the waiting one never ran
    assert interrupted == [True]  # and it was asked to stop


def test_a_dedicated_thread_ends_while_the_ui_thread_waits(qtbot):
    runner = TaskRunner(DEDICATED)
    gate = threading.Event()
    done, ended = [], []

    def long_job(state: TaskState) -> str:
        gate.wait(10)
        while not state.is_interruption_requested():
            state.interruption_event.wait(0.01)
        return "stopped"

    task = runner.start(long_job, done=done.append, ended=lambda: ended.append(True))
    assert task.is_running()
    gate.set()
    task.cancel()
    assert task.wait(10_000) and not task.is_running()  # no event loop needed to end it
    qtbot.waitUntil(lambda: bool(done and ended), timeout=10_000)
    assert done == ["stopped"] and ended == [True]


def test_a_closed_runner_takes_no_more_work(qtbot):
    runner = TaskRunner(POOL)
    assert runner.close(1000)
    with pytest.raises(RuntimeError, match="closed"):
        runner.start(count_to, 1)
    with pytest.raises(ValueError, match="unknown task policy"):
        TaskRunner("fifo")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
@pytest.mark.parametrize("policy", [POOL, DEDICATED])
def test_background_work_runs_below_the_gui_threads_priority(qtbot, monkeypatch, policy):
    """Work and the threads it starts (ONNX Runtime's, the cropping pool's) run niced, so they
    yield the CPU to the GUI thread; the GUI thread itself keeps its priority."""
    monkeypatch.delenv("CELLVIEWER_WORKER_NICE", raising=False)
    gui_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def nice_here() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def work(state: TaskState) -> tuple[int, int]:
        started: list[int] = []
        child = threading.Thread(target=lambda: started.append(nice_here()))
        child.start()
        child.join()
        return nice_here(), started[0]

    runner = TaskRunner(policy, 1)
    done: list[tuple[int, int]] = []
    runner.start(work, done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    assert runner.wait(5000)
    expected = max(gui_nice, BACKGROUND_NICE)
    assert done == [(expected, expected)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == gui_nice
