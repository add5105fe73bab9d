"""Is this project file sound? SQLite's own checks, at open (bounded in time) and on demand.

At open (:func:`check_at_open`): a file up to :data:`FULL_CHECK_MAX_BYTES` gets the full
``PRAGMA integrity_check`` plus ``PRAGMA foreign_key_check``; a larger one ``PRAGMA
quick_check``. Why not always the quick one: on a corpus of byte-flipped projects, 69 of 200
files passed ``quick_check`` and failed ``integrity_check`` (quick_check does not compare the
indexes with their tables: "row 86 missing from index history_cell"), and such a file would
open and take edits. The full check of a small file costs milliseconds (measured on a 290 MB
file: integrity_check 10.7 s, quick_check 0.7 s, so the full one is kept to small files).
Either check runs under a time budget (:data:`OPEN_CHECK_BUDGET_S`, enforced with SQLite's
progress handler): beyond it the check is abandoned, the project opens, and the result says the
check was cut short, so the app can say so and run the full check in the background (the
backup, which runs its own ``quick_check`` first, does too). A huge project therefore never
waits more than the budget.

On demand (:func:`check_project`): the full check on a connection of its own, so it can run in
a worker thread while the project stays open; it can be stopped between SQLite steps.

And the bookkeeping of the ``-wal``/``-shm`` side files (:func:`side_files`,
:func:`remove_side_files_we_made`), so a refused open leaves nothing behind that was not there.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: files up to this size get the full integrity_check at open; larger ones the quick_check
FULL_CHECK_MAX_BYTES = 32 * 1024 * 1024
#: the longest the check at open may take before it is abandoned (the project then opens
#: with the check marked incomplete); None: no limit
OPEN_CHECK_BUDGET_S: float | None = 5.0
#: how many problems a check reports at most (SQLite would list thousands on a bad file)
MAX_PROBLEMS = 20
_PROGRESS_STEPS = 10_000  # SQLite VM steps between two looks at the clock


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: ``ok`` (nothing found), ``complete`` (False: abandoned after its
    time budget or on request, so ``ok`` only says nothing was found so far), ``kind``
    ("integrity" or "quick"), the first problems SQLite named, and how long it took."""

    ok: bool
    complete: bool
    kind: str
    problems: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def summary(self) -> str:
        """One line for people."""
        if not self.complete:
            return (f"the {self.kind} check was stopped after {self.elapsed_s:.1f} s "
                    "before it finished; nothing was found until then")
        if self.ok:
            return f"the {self.kind} check found no problem ({self.elapsed_s:.1f} s)"
        more = "" if len(self.problems) < MAX_PROBLEMS else " …"
        return (f"the {self.kind} check found problems: "
                + "; ".join(self.problems[:3]) + more)


def run_check(conn: sqlite3.Connection, *, full: bool, budget_s: float | None = None,
              should_stop: Callable[[], bool] | None = None) -> CheckResult:
    """Run ``integrity_check`` (``full``, with a foreign-key check) or ``quick_check`` on
    ``conn``, abandoned when ``budget_s`` has passed or ``should_stop()`` says so. SQLite
    errors while checking (a file too damaged to walk) propagate: the caller translates them."""
    kind = "integrity" if full else "quick"
    start = time.monotonic()
    deadline = None if budget_s is None else start + budget_s
    stopped = False

    def progress() -> int:
        nonlocal stopped
        if (deadline is not None and time.monotonic() > deadline) or \
                (should_stop is not None and should_stop()):
            stopped = True
            return 1  # interrupts the statement
        return 0

    conn.set_progress_handler(progress, _PROGRESS_STEPS)
    try:
        pragma = "integrity_check" if full else "quick_check"
        rows = conn.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})").fetchall()
        problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
        if full and not problems:
            fk = conn.execute("PRAGMA foreign_key_check").fetchmany(MAX_PROBLEMS)
            problems = [f"a row of {r[0]} refers to a missing row of {r[2]}" for r in fk]
    except sqlite3.OperationalError:
        if not stopped:
            raise
        return CheckResult(True, False, kind, [], time.monotonic() - start)
    finally:
        conn.set_progress_handler(None, 0)
    return CheckResult(not problems, True, kind, problems, time.monotonic() - start)


def check_at_open(conn: sqlite3.Connection, path: Path,
                  budget_s: float | None = OPEN_CHECK_BUDGET_S) -> CheckResult:
    """The check a project gets when it is opened (see the module docstring)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return run_check(conn, full=size <= FULL_CHECK_MAX_BYTES, budget_s=budget_s)


def check_project(path: str | Path, *, full: bool = True,
                  should_stop: Callable[[], bool] | None = None) -> CheckResult:
    """Check the project file ``path`` on a read-only connection of its own (a worker thread
    may run it while the project is open; WAL lets it read a consistent snapshot). No time
    limit; ``should_stop`` (e.g. ``TaskState.is_interruption_requested``) ends it early.
    Raises the project's own error (ProjectDamagedError for a file too damaged to check)."""
    from cellviewer.core.store.base import store_errors

    path = Path(path).expanduser().absolute()
    with store_errors(path, "checking the project file"):
        conn = connect_read_only(path)
        try:
            return run_check(conn, full=full, should_stop=should_stop)
        finally:
            conn.close()


def connect_read_only(path: Path, *, immutable: bool | None = None) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``; ``immutable=1`` for a file that cannot be written
    and that nobody has open, see :func:`read_as_immutable`; None: decide so)."""
    if immutable is None:
        immutable = read_as_immutable(path, side_files(path))
    query = "immutable=1" if immutable else "mode=ro"
    return sqlite3.connect(f"{path.as_uri()}?{query}", uri=True, isolation_level=None,
                           timeout=10.0)


def read_as_immutable(path: Path, before: frozenset[str]) -> bool:
    """Whether a read-only connection to ``path`` (a file whose side files ``before`` exist)
    should read it as immutable: the file or its folder cannot be written, and either nobody
    has it open (no side files: SQLite would make a -wal/-shm it cannot make in a read-only
    folder, or leave them beside a read-only file) or the folder is read-only and the -shm a
    WAL reader needs is missing."""
    folder_ro = not os.access(path.parent, os.W_OK | os.X_OK)
    if not folder_ro and os.access(path, os.W_OK):
        return False
    return not before or (folder_ro and not {"-wal", "-shm"} <= before)


# ---------------------------------------------------------------------- side files

SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def side_files(path: Path) -> frozenset[str]:
    """Which of the project's side files (``-wal``, ``-shm``, ``-journal``) exist now."""
    return frozenset(s for s in SIDE_SUFFIXES if Path(f"{path}{s}").exists())


def remove_side_files_we_made(path: Path, before: frozenset[str]) -> list[Path]:
    """After a refused open (the connection closed): remove the side files that were not there
    ``before`` it, and only when they hold nothing. A ``-wal`` or ``-journal`` we made is
    removed only when empty (a non-empty one might hold someone's commit: it stays); the
    ``-shm`` (an index SQLite rebuilds) only when no ``-wal`` is left beside it. Returns what
    was removed."""
    removed: list[Path] = []
    for suffix in ("-wal", "-journal"):
        side = Path(f"{path}{suffix}")
        if suffix in before:
            continue
        with contextlib.suppress(OSError):
            if side.exists() and side.stat().st_size == 0:
                side.unlink()
                removed.append(side)
    shm = Path(f"{path}-shm")
    if "-shm" not in before and not Path(f"{path}-wal").exists():
        with contextlib.suppress(OSError):
            if shm.exists():
                shm.unlink()
                removed.append(shm)
    return removed


def tidy_after_read_only(path: Path, before: frozenset[str]) -> None:
    """After a read-only connection closed: SQLite leaves the ``-wal``/``-shm`` files such a
    connection made (it may not checkpoint). If they were not there ``before`` and the file and
    folder are writable, a brief writable connection that reads and closes lets SQLite remove
    them itself: it does so only as the last connection, so another app's files are safe."""
    made = {"-wal", "-shm"} - before
    if not made or not any(Path(f"{path}{s}").exists() for s in made):
        return
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        return
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=0.0)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        finally:
            conn.close()
