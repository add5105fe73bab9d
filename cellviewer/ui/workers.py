"""Background work for the GUI: run a callable in a thread pool, get its result on the GUI thread.

The UI thread must never wait on I/O (reading tiles, opening images, cropping patches, loading a
large image's cells), so every such job goes through a :class:`BackgroundRunner`: ``submit(fn,
on_done, on_error)`` runs ``fn()`` in a ``QThreadPool`` worker and calls ``on_done(result)`` or
``on_error(message)`` back on the GUI thread (a queued signal). Jobs that have not started yet can
be cancelled, which is how a view drops requests for tiles that have scrolled out of sight.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


def describe_error(exc: BaseException) -> str:
    """The message a user sees: our errors already name the file and the cause; others get
    their type in front so 'KeyError: 3' is not shown as a bare '3'."""
    text = str(exc).strip()
    if type(exc).__name__.endswith("Error") and type(exc).__module__.startswith("cellviewer"):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Relay(QObject):
    """Lives on the GUI thread; workers emit on it, Qt queues the call to the GUI thread."""

    done = Signal(int, object)
    failed = Signal(int, str)


class _Job(QRunnable):
    def __init__(self, token: int, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner keeps the Python object alive until it reports
        self.token = token
        self.fn = fn
        self.relay = relay

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # every failure is reported; none kills a pool thread
            # RuntimeError: the runner was deleted while we worked; nobody is left to tell
            with contextlib.suppress(RuntimeError):
                self.relay.failed.emit(self.token, describe_error(exc))
            return
        with contextlib.suppress(RuntimeError):
            self.relay.done.emit(self.token, result)


class BackgroundRunner(QObject):
    """Runs callables in its own thread pool and delivers results on the GUI thread."""

    def __init__(self, max_threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, max_threads))
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)
        self._jobs: dict[int, tuple[_Job, Callable | None, Callable | None]] = {}
        self._tokens = itertools.count(1)

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        priority: int = 0,
    ) -> int:
        """Start ``fn()`` in a worker; returns a token for :meth:`cancel`."""
        token = next(self._tokens)
        job = _Job(token, fn, self._relay)
        self._jobs[token] = (job, on_done, on_error)
        self.pool.start(job, priority)
        return token

    def cancel(self, token: int) -> bool:
        """Drop a job that has not started; True if it will not run."""
        entry = self._jobs.get(token)
        if entry is None:
            return False
        if self.pool.tryTake(entry[0]):
            del self._jobs[token]
            return True
        return False

    def pending(self) -> int:
        return len(self._jobs)

    def wait(self, msecs: int = 5000) -> bool:
        """Block until every started job ended (used on close and in tests)."""
        return self.pool.waitForDone(msecs)

    def _on_done(self, token: int, result: Any) -> None:
        entry = self._jobs.pop(token, None)
        if entry is not None and entry[1] is not None:
            entry[1](result)

    def _on_failed(self, token: int, message: str) -> None:
        entry = self._jobs.pop(token, None)
        if entry is not None and entry[2] is not None:
            entry[2](message)
