"""Stop requests: the line ``stop`` on stdin (a reader thread) or SIGTERM/SIGINT.

The training loop only looks at ``StopControl.event`` between batches, so a request finishes
the batch in flight, then the loop writes the model files and reports ``stopped``. A second
SIGINT (Ctrl-C twice) interrupts at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import IO

from trainer.formats.protocol import STOP_COMMAND


class StopControl:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.source: str | None = None

    def request(self, source: str) -> None:
        if not self.event.is_set():
            self.source = source
            self.event.set()

    def watch_stdin(self, stream: IO[str] | None = None) -> threading.Thread:
        """Read lines from ``stream`` (stdin) in a daemon thread; ``stop`` requests a stop.
        End of input (stdin closed or /dev/null) is not a request."""
        stream = stream if stream is not None else sys.stdin

        def reader() -> None:
            try:
                for line in stream:
                    if line.strip().lower() == STOP_COMMAND:
                        self.request("stdin")
            except (OSError, ValueError):  # stdin closed under us
                pass

        thread = threading.Thread(target=reader, name="trainer-stdin", daemon=True)
        thread.start()
        return thread

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT request a stop; a second SIGINT raises KeyboardInterrupt.
        Only from the main thread (Python's rule for signal handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame) -> None:
            if signum == signal.SIGINT and self.event.is_set():
                raise KeyboardInterrupt
            self.request(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
