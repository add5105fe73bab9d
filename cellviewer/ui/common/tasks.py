"""The one way the app leaves the UI thread: a :class:`TaskState` the work reports to, and a
:class:`TaskRunner` that runs work functions with one of three policies.

A work function is a plain function ``fn(*args, state)`` (Qt-free, testable by calling it with
a ``TaskState()``): it reports progress, a status text and partial results to ``state`` and
looks at ``state.is_interruption_requested()`` between steps. The runner calls it off the UI
thread and hands everything it reports to callbacks *on the UI thread* (queued signals of a
relay object that lives there). Modelled on Orange3's ``TaskState`` and
``ConcurrentWidgetMixin``.

Policies:

- ``POOL``: many small jobs in a thread pool, by priority (reading tiles, opening images,
  cropping); a job that has not started can be cancelled and never runs.
- ``NEWEST``: one job at a time; a new request replaces the one waiting, and a running one is
  asked to stop and its result dropped: only the newest request's outcome reaches the UI (the
  live blur preview while a slider moves).
- ``DEDICATED``: a long job on its own thread (batch prediction), which ends by itself, so the
  UI thread may wait for it without running events (closing the window).

``QRunnable`` and ``QThread`` are used here and nowhere else in ``cellviewer.ui`` (the trainer's
subprocess has :mod:`cellviewer.ui.common.trainer_process`); tests/cellviewer/ui/
test_one_background_mechanism.py checks it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

POOL, NEWEST, DEDICATED = "pool", "newest", "dedicated"
POLICIES = (POOL, NEWEST, DEDICATED)


def describe_error(exc: BaseException) -> str:
    """The message a user sees: our errors already name the file and the cause; others get
    their type in front so 'KeyError: 3' is not shown as a bare '3'."""
    text = str(exc).strip()
    if type(exc).__name__.endswith("Error") and type(exc).__module__.startswith("cellviewer"):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TaskState:
    """What a running work function reports, and whether it is asked to stop. Thread-safe and
    Qt-free: the callbacks are called in the worker's thread (the runner makes them queued
    signals to the UI thread)."""

    def __init__(self, on_progress: Callable[[Any], None] | None = None,
                 on_status: Callable[[str], None] | None = None,
                 on_partial: Callable[[Any], None] | None = None) -> None:
        self._interrupt = threading.Event()
        self._lock = threading.Lock()
        self._on_progress, self._on_status, self._on_partial = on_progress, on_status, on_partial
        self.progress: Any = None
        self.status = ""
        self.partial: Any = None

    def set_progress(self, value: Any) -> None:
        """A fraction (0..1) or any progress object (e.g. a ``PredictProgress``)."""
        with self._lock:
            self.progress = value
        if self._on_progress is not None:
            self._on_progress(value)

    def set_status(self, text: str) -> None:
        with self._lock:
            self.status = str(text)
        if self._on_status is not None:
            self._on_status(str(text))

    def set_partial_result(self, value: Any) -> None:
        with self._lock:
            self.partial = value
        if self._on_partial is not None:
            self._on_partial(value)

    def request_interruption(self) -> None:
        """Cancel: the work function stops at its next check."""
        self._interrupt.set()

    def is_interruption_requested(self) -> bool:
        return self._interrupt.is_set()

    @property
    def interruption_event(self) -> threading.Event:
        """The event behind :meth:`is_interruption_requested` (for code that takes one)."""
        return self._interrupt


@dataclass(eq=False)
class Task:
    """One submitted work function: a handle to cancel it and look at its state."""

    token: int
    state: TaskState
    runner: TaskRunner
    callbacks: dict[str, Callable | None] = field(default_factory=dict)
    started: bool = False
    job: Any = None  # the QRunnable or the QThread

    def cancel(self) -> bool:
        """True when it will not run at all; a running one is asked to stop."""
        return self.runner.cancel(self)

    def is_running(self) -> bool:
        if isinstance(self.job, QThread):
            return self.job.isRunning()
        return self.started and self.token in self.runner._tasks

    def wait(self, msecs: int = 30000) -> bool:
        """Block until its thread ended (tests and shutdown; ``DEDICATED`` only waits for this
        one, the pool policies for the whole pool)."""
        if isinstance(self.job, QThread):
            return self.job.wait(msecs)
        return self.runner.wait(msecs)


class _Relay(QObject):
    """Lives on the UI thread; workers emit on it and Qt queues the calls to the UI thread."""

    progress = Signal(int, object)
    status = Signal(int, str)
    partial = Signal(int, object)
    done = Signal(int, object)
    failed = Signal(int, str)
    ended = Signal(int)


#: The nice value of every worker thread (the GUI thread keeps 0). On Linux the nice value is
#: a property of each thread, inherited by the threads a thread starts (ONNX Runtime's pool,
#: the cropping pool, the prediction job's writer), so background work yields the CPU to the
#: GUI thread whenever it has something to do, and runs at full speed when it has not. Without
#: it a batch prediction's threads took both cores of a 2-core machine and stretched each
#: repaint of the view past 50 ms.
BACKGROUND_NICE = 10


def lower_this_threads_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Give the calling thread (not the process) the nice value ``nice`` where the system has
    per-thread nice values (Linux); True if it did. Raising a nice value needs no privilege;
    a thread already at or above it is left alone (lowering it again would need one)."""
    if not sys.platform.startswith("linux") or os.environ.get("CELLVIEWER_WORKER_NICE") == "0":
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) >= nice:
            return False
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        return False
    return True


def _call(task: Task, fn: Callable, args: tuple, relay: _Relay) -> None:
    """Run the work function in the current (worker) thread and report its outcome."""
    task.started = True
    lower_this_threads_priority()
    try:
        result = fn(*args, task.state)
    except BaseException as exc:  # every failure is reported; none kills a worker thread
        if not isinstance(exc, Exception):
            traceback.print_exc()
        # RuntimeError: the runner was deleted while we worked; nobody is left to tell
        with contextlib.suppress(RuntimeError):
            relay.failed.emit(task.token, describe_error(exc))
        return
    with contextlib.suppress(RuntimeError):
        relay.done.emit(task.token, result)


class _PoolJob(QRunnable):
    def __init__(self, task: Task, fn: Callable, args: tuple, relay: _Relay) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner keeps the Python object alive until it reports
        self.task, self.fn, self.args, self.relay = task, fn, args, relay

    def run(self) -> None:
        _call(self.task, self.fn, self.args, self.relay)


class _Thread(QThread):
    """A thread for one long job; no event loop, so it ends as soon as the job returns (a UI
    thread blocked in ``wait`` needs to deliver nothing for it to end)."""

    def __init__(self, task: Task, fn: Callable, args: tuple, relay: _Relay) -> None:
        super().__init__()
        self.setObjectName("task-thread")
        self.task, self.fn, self.args, self.relay = task, fn, args, relay

    def run(self) -> None:
        _call(self.task, self.fn, self.args, self.relay)


class TaskRunner(QObject):
    """Runs work functions ``fn(*args, state)`` off the UI thread by one of the policies
    (``POOL``, ``NEWEST``, ``DEDICATED``) and calls ``done(result)``, ``failed(message)``,
    ``progress(value)``, ``status(text)``, ``partial(value)`` on the UI thread."""

    def __init__(self, policy: str = POOL, max_threads: int = 2,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if policy not in POLICIES:
            raise ValueError(f"unknown task policy {policy!r} (one of {', '.join(POLICIES)})")
        self.policy = policy
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1 if policy == NEWEST else max(1, max_threads))
        self._relay = _Relay(self)
        self._relay.progress.connect(lambda t, v: self._report(t, "progress", v))
        self._relay.status.connect(lambda t, v: self._report(t, "status", v))
        self._relay.partial.connect(lambda t, v: self._report(t, "partial", v))
        self._relay.done.connect(lambda t, v: self._finish(t, "done", v))
        self._relay.failed.connect(lambda t, v: self._finish(t, "failed", v))
        self._relay.ended.connect(self._on_thread_ended)
        self._tasks: dict[int, Task] = {}
        self._threads: dict[int, _Thread] = {}
        self._tokens = itertools.count(1)
        self._latest = 0
        self._closed = False

    @property
    def latest_token(self) -> int:
        return self._latest

    def start(self, fn: Callable[..., Any], *args: Any,
              done: Callable[[Any], None] | None = None,
              failed: Callable[[str], None] | None = None,
              progress: Callable[[Any], None] | None = None,
              status: Callable[[str], None] | None = None,
              partial: Callable[[Any], None] | None = None,
              ended: Callable[[], None] | None = None,
              priority: int = 0) -> Task:
        """Run ``fn(*args, state)`` by the runner's policy; returns its :class:`Task`."""
        if self._closed:
            raise RuntimeError("this task runner is closed")
        token = next(self._tokens)
        relay = self._relay
        state = TaskState(
            on_progress=lambda v: self._emit(relay.progress, token, v),
            on_status=lambda v: self._emit(relay.status, token, v),
            on_partial=lambda v: self._emit(relay.partial, token, v))
        task = Task(token, state, self, {"done": done, "failed": failed, "progress": progress,
                                         "status": status, "partial": partial, "ended": ended})
        if self.policy == NEWEST:
            for older in list(self._tasks.values()):  # the newest wins
                self.cancel(older)
        self._latest = token
        self._tasks[token] = task
        if self.policy == DEDICATED:
            thread = _Thread(task, fn, args, relay)
            thread.finished.connect(lambda t=token: self._emit(relay.ended, t))
            task.job = thread
            self._threads[token] = thread
            thread.start()
        else:
            task.job = _PoolJob(task, fn, args, relay)
            self.pool.start(task.job, priority)
        return task

    def cancel(self, task: Task | int) -> bool:
        """Drop a task that has not started (True: it will not run); a running one is asked
        to stop (``NEWEST`` also drops its result)."""
        found = self._tasks.get(task) if isinstance(task, int) else task
        if found is None or found.token not in self._tasks:
            return False
        found.state.request_interruption()
        if isinstance(found.job, QRunnable) and self.pool.tryTake(found.job):
            del self._tasks[found.token]
            return True
        return False

    def pending(self) -> int:
        """Tasks submitted whose outcome has not been delivered yet."""
        return len(self._tasks)

    def is_idle(self) -> bool:
        return not self._tasks

    def wait(self, msecs: int = 5000) -> bool:
        """Block until every started task's thread ended (close and tests)."""
        ok = self.pool.waitForDone(msecs)
        for thread in list(self._threads.values()):
            ok = thread.wait(msecs) and ok
        return ok

    def close(self, msecs: int = 5000) -> bool:
        """Accept no more work, drop what waits, ask what runs to stop and wait for it."""
        self._closed = True
        for task in list(self._tasks.values()):
            self.cancel(task)
        return self.wait(msecs)

    # --- delivery (UI thread) -----------------------------------------------------------
    @staticmethod
    def _emit(signal, *values: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the runner is gone: nobody to tell
            signal.emit(*values)

    def _wanted(self, token: int) -> Task | None:
        task = self._tasks.get(token)
        if task is None:
            return None
        if self.policy == NEWEST and token != self._latest:
            return None  # a newer request made it stale
        return task

    def _report(self, token: int, kind: str, value: Any) -> None:
        task = self._wanted(token)
        callback = task.callbacks.get(kind) if task is not None else None
        if callback is not None:
            callback(value)

    def _finish(self, token: int, kind: str, value: Any) -> None:
        task = self._wanted(token)
        self._tasks.pop(token, None)
        callback = task.callbacks.get(kind) if task is not None else None
        if callback is not None:
            callback(value)

    def _on_thread_ended(self, token: int) -> None:
        thread = self._threads.pop(token, None)
        callback = thread.task.callbacks.get("ended") if thread is not None else None
        if callback is not None:
            callback()
