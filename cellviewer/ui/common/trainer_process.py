"""The trainer as a subprocess of the app: one class for training runs and blur measurements.

:class:`TrainerProcess` starts ``python -u -m trainer ARGS`` (a frozen app: ``<app>
--run-trainer ARGS``, see :func:`cellviewer.core.training.runs.trainer_invocation`) with the app's
own
trainer on ``PYTHONPATH`` (:func:`cellviewer.core.training.runs.trainer_env`), and:

- reads the progress protocol from its stdout (``trainer.formats.protocol.LineBuffer``: a line split
  across two reads is kept until its end arrives) and emits ``protocol_event(dict)`` per line;
- emits ``log(str)`` per stderr line and keeps the last of them for a failure message
  (:meth:`stderr_tail`);
- stops it with a ``stop`` line on stdin, then SIGTERM, then a kill (:meth:`stop`);
- lets it go (:meth:`detach`): the child runs in a session of its own and is not killed when
  the app quits, so a training run can outlive the app (the trainer keeps writing its
  ``events.jsonl`` when nobody reads its stdout any more).

It uses ``subprocess.Popen`` and reader threads rather than a ``QProcess``, because a
``QProcess`` kills its child when it is destroyed, and a detached run must survive the app.
The threads only read the pipes into a queue; everything is handed out on the UI thread.
``threading.Thread`` appears here and in :mod:`cellviewer.ui.common.tasks` only (see
tests/cellviewer/ui/test_one_background_mechanism.py).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from cellviewer.core.training import runs as runs_mod
from cellviewer.ui.common.tasks import BACKGROUND_NICE

#: how long a stop request may take (finish the batch, write the model files; a run still
#: compiling its training step only sees the request once it starts) before SIGTERM
STOP_GRACE_MS = 60_000
#: after SIGTERM, how long before a kill
TERMINATE_GRACE_MS = 5_000
#: bytes of stderr kept for a failure message
STDERR_KEEP = 16_000


class TrainerProcess(QObject):
    """One trainer command in a child process (see the module docstring).

    Signals (on the UI thread): ``protocol_event(dict)`` per protocol line on stdout,
    ``log(str)`` per line of stderr, ``finished(exit_code, crashed)`` once, after every line it
    wrote was delivered (``crashed``: ended by a signal, e.g. killed). After :meth:`detach`
    none comes.
    """

    #: not called ``event``: that would shadow ``QObject.event``, which delivers Qt's events
    protocol_event = Signal(dict)
    log = Signal(str)
    finished = Signal(int, bool)
    _wake = Signal()

    def __init__(self, args: list[str], cwd: str | os.PathLike, parent: QObject | None = None,
                 *, protocol: bool = True, program: str | None = None,
                 processes: int = 1) -> None:
        """``args``: a trainer command (``["robustness", ...]``); with ``program``, the
        program to run with ``args`` as they are instead (tests run a stand-in child).
        ``processes`` > 1: torchrun runs that many trainers, one per GPU; stopping it works
        the same (its rank 0 reads the ``stop`` line; torchrun passes SIGTERM on)."""
        super().__init__(parent)
        from trainer.formats.protocol import LineBuffer

        self.program, self.args = ((program, list(args)) if program is not None
                                   else runs_mod.trainer_invocation(list(args), processes))
        self.cwd = Path(cwd)
        self.protocol = protocol
        self.error: str | None = None  # why it could not be started
        self.started_at: float | None = None
        self.exit_code: int | None = None
        self.lines = LineBuffer()
        self._stderr = b""
        self._err_pending = ""
        self._popen: subprocess.Popen | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._ended = False
        self._detached = False
        self._wake.connect(self._drain)
        self._escalate = QTimer(self)
        self._escalate.setSingleShot(True)
        self._escalate.timeout.connect(self._next_stop_step)

    # --- starting ------------------------------------------------------------------------
    def command_line(self) -> str:
        return " ".join([self.program, *self.args])

    def _lower_priority(self) -> None:
        """Run the trainer below the GUI's priority (the worker threads' nice value), so a
        training run on the CPU leaves the window responsive and takes the cores the window
        does not need. Set just after the spawn, long before torch starts its threads (they
        inherit it); a no-op where the system refuses."""
        if sys.platform == "win32" or os.environ.get("CELLVIEWER_WORKER_NICE") == "0":
            return
        with contextlib.suppress(OSError):
            pid = self._popen.pid
            if os.getpriority(os.PRIO_PROCESS, pid) < BACKGROUND_NICE:
                os.setpriority(os.PRIO_PROCESS, pid, BACKGROUND_NICE)

    def start(self) -> bool:
        """Spawn the child (when this returns it has exec'd: :attr:`pid` is the trainer's).
        False when it could not be started; :attr:`error` says why, in words."""
        if self._popen is not None:
            raise RuntimeError("a TrainerProcess runs once")
        kwargs: dict = {}
        if sys.platform == "win32":  # pragma: no cover - Windows only
            kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP
                                       | getattr(subprocess, "CREATE_NO_WINDOW", 0))
        else:
            kwargs["start_new_session"] = True  # not in the app's process group: detachable
        self.started_at = time.monotonic()
        try:
            self._popen = subprocess.Popen(
                [self.program, *self.args], cwd=str(self.cwd), env=runs_mod.trainer_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0, **kwargs)
        except OSError as exc:
            self.error = (f"Could not start the trainer ({exc.strerror or exc}). Check that "
                          "the app's Python environment includes the trainer.")
            self._ended = True
            return False
        self._lower_priority()
        readers = [threading.Thread(target=self._read, args=(self._popen.stdout, "out"),
                                    name="trainer-stdout", daemon=True),
                   threading.Thread(target=self._read, args=(self._popen.stderr, "err"),
                                    name="trainer-stderr", daemon=True)]
        waiter = threading.Thread(target=self._wait_for_exit, args=(readers,),
                                  name="trainer-exit", daemon=True)
        self._threads = [*readers, waiter]
        for thread in self._threads:
            thread.start()
        return True

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def is_running(self) -> bool:
        """Started and not yet reported as ended."""
        return self._popen is not None and not self._ended

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def stderr_tail(self, lines: int = 6) -> str:
        """The last non-empty lines of stderr (for a failure message)."""
        text = self._stderr.decode("utf-8", errors="replace")
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])

    # --- control -------------------------------------------------------------------------
    def write_line(self, text: str) -> bool:
        """Send a line to the child's stdin; False when it no longer reads it."""
        pipe = self._popen.stdin if self._popen is not None else None
        if pipe is None or self._ended:
            return False
        try:
            pipe.write(text.encode("utf-8") + b"\n")
            pipe.flush()
        except (OSError, ValueError):
            return False
        return True

    def stop(self, grace_ms: int = STOP_GRACE_MS) -> None:
        """Ask for a clean stop (``stop`` on stdin: the trainer finishes its batch and writes
        its model files); SIGTERM after ``grace_ms``, a kill :data:`TERMINATE_GRACE_MS`
        later. Not waited on."""
        if not self.is_running():
            return
        from trainer.formats.protocol import STOP_COMMAND

        self._stop_step = 0
        self.write_line(STOP_COMMAND)
        self._escalate.start(max(0, grace_ms))

    def _next_stop_step(self) -> None:
        if not self.is_running():
            return
        if self._stop_step == 0:
            self._stop_step = 1
            self.terminate()
            self._escalate.start(TERMINATE_GRACE_MS)
        else:
            self.kill()

    def terminate(self) -> None:
        if self._popen is not None and self.is_running():
            with contextlib.suppress(OSError):
                self._popen.terminate()

    def kill(self) -> None:
        if self._popen is not None and self.is_running():
            with contextlib.suppress(OSError):
                self._popen.kill()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the child ended and everything it wrote was handed out (its events,
        its log, then ``finished``), without running the event loop (shutdown, tests)."""
        if self._popen is None or self._ended:
            return True
        try:
            self._popen.wait(timeout=max(0, msecs) / 1000)
        except subprocess.TimeoutExpired:
            return False
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._drain()
        return self._ended

    def detach(self) -> None:
        """Let the child go on without the app: no more signals; the pipes are drained (so a
        full pipe never blocks the child) until the app quits, after which the trainer writes
        only its files. The child is never killed for this object's sake."""
        self._detached = True
        self._escalate.stop()
        if self._popen is not None and self._popen.stdin is not None:
            with contextlib.suppress(OSError):
                self._popen.stdin.close()

    @property
    def detached(self) -> bool:
        return self._detached

    # --- reading (worker threads: only the queue, and a wake-up for the UI thread) --------
    def _read(self, pipe, kind: str) -> None:
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if not self._detached:
                self._queue.put((kind, chunk))
                self._notify()
        with contextlib.suppress(OSError):
            pipe.close()

    def _wait_for_exit(self, readers: list[threading.Thread]) -> None:
        for thread in readers:
            thread.join()
        assert self._popen is not None
        code = self._popen.wait()
        self._queue.put(("exit", code))
        self._notify()

    def _notify(self) -> None:
        with contextlib.suppress(RuntimeError):  # the object is gone (app closing, detached)
            self._wake.emit()

    # --- handing out (UI thread) ------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                kind, value = self._queue.get_nowait()
            except queue.Empty:
                return
            if self._detached or self._ended:
                continue
            if kind == "out":
                self._on_stdout(value)
            elif kind == "err":
                self._on_stderr(value)
            else:
                self._on_exit(int(value))

    def _on_stdout(self, chunk: bytes) -> None:
        if not self.protocol:
            return
        for ev in self.lines.feed(chunk):
            self.protocol_event.emit(ev)

    def _on_stderr(self, chunk: bytes) -> None:
        self._stderr = (self._stderr + chunk)[-STDERR_KEEP:]
        text = self._err_pending + chunk.decode("utf-8", errors="replace")
        *lines, self._err_pending = text.split("\n")
        for line in lines:
            line = line.rstrip("\r")
            if line:
                self.log.emit(line)

    def _on_exit(self, code: int) -> None:
        if self.protocol:
            for ev in self.lines.flush():  # a last line without its newline
                self.protocol_event.emit(ev)
        if self._err_pending.strip():
            self.log.emit(self._err_pending.rstrip("\r"))
        self._err_pending = ""
        self._escalate.stop()
        self._ended = True
        self.exit_code = code
        crashed = code < 0 if sys.platform != "win32" else False
        self.finished.emit(code, crashed)


def signal_process(pid: int | None, token: str | None, signum: int) -> bool:
    """Send ``signum`` to a trainer this app no longer holds (one detached or left running by
    an earlier session), if it is still the process that was recorded; True when sent."""
    if pid is None or not runs_mod.process_alive(pid, token):
        return False
    try:
        os.kill(int(pid), signum)
    except OSError:
        return False
    return True


#: SIGKILL where the system has it (SIGTERM on Windows, where both end the process)
SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)
