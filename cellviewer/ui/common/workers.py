"""Background work for the GUI: run a callable in a thread pool, get its result on the GUI thread.

The UI thread must never wait on I/O (reading tiles, opening images, cropping patches, loading a
large image's cells), so every such job goes through a :class:`BackgroundRunner`: ``submit(fn,
on_done, on_error)`` runs ``fn()`` in a pool worker and calls ``on_done(result)`` or
``on_error(message)`` back on the GUI thread. Jobs that have not started yet can be cancelled,
which is how a view drops requests for tiles that have scrolled out of sight.

It is the ``POOL`` policy of :class:`cellviewer.ui.common.tasks.TaskRunner` under the name (and the
``submit`` signature) its callers know; new code may use the runner directly, with a
``TaskState`` for progress and cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from cellviewer.ui.common.tasks import POOL, TaskRunner, describe_error

__all__ = ["BackgroundRunner", "describe_error"]


class BackgroundRunner(TaskRunner):
    """Runs callables in its own thread pool and delivers results on the GUI thread."""

    def __init__(self, max_threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(POOL, max_threads, parent)

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        priority: int = 0,
    ) -> int:
        """Start ``fn()`` in a worker; returns a token for :meth:`cancel`."""
        return self.start(lambda _state: fn(), done=on_done, failed=on_error,
                          priority=priority).token
