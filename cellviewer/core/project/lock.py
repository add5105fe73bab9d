"""A lock file beside a project, so two CellViewer instances never edit one project at once.

Two apps writing one ``.cvproj`` each keep their own undo stack over the same cells; the stacks
interleave and a pathologist loses track of (or undoes) the other's work. So the main window takes
this lock before it opens a project and keeps it while the project is open. Worker threads of the
same app open their own store connections without it: they are the same user's work.

The lock is ``<project file name>.lock`` (``demo.cvproj.lock``), a small JSON record of who holds
it: ``{"pid", "host", "user", "app": "CellViewer", "started_at"}`` (ISO 8601 UTC). It is created
with ``O_CREAT | O_EXCL`` (only one creator can win), written and fsynced.

An existing lock is judged, not trusted:

- held by a process on this computer that is still running: refused, with a
  :class:`ProjectInUseError` that names the project file and the owner;
- held by a process on this computer that is no longer running (the app crashed or was killed),
  or an empty or unreadable file (a crash mid-write): stale, taken over without a question
  (``lock.took_over``);
- held by another computer: cannot be checked from here, so treated as in use;
- ``force=True`` (the user chose "Open anyway") takes any lock over.

Within one process the lock is shared and counted: opening the project again (the same window
re-opening it, a second window of the same app) succeeds, and the file goes when the last holder
releases it. A lock file that carries this process's id but that this process never wrote is a
leftover of an earlier process that had the same id (common in containers), so it is stale.

A stale or forced lock is taken over by renaming it aside, checking that what was moved is what
was judged, and only then creating ours; so two apps taking over the same stale lock at the same
moment cannot both win. ``release()`` removes the file the same way, only while it still holds our
record, so it never deletes the lock of an app that took over since.

A folder where the lock cannot be created (read-only share, write-protected CD of a study) does not
stop anyone from opening the project: :meth:`ProjectLock.acquire` then returns a lock with
``held == False`` and the ``reason``.

Process liveness: ``os.kill(pid, 0)`` on POSIX; on Windows ``os.kill`` would send CTRL+C, so it
asks ``OpenProcess``/``GetExitCodeProcess``. A process id reused by an unrelated process reads as
alive: the user is asked and can open anyway, which errs on the safe side.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from cellviewer.core.store.common import utc_now
from cellviewer.core.store.records import ProjectError

log = logging.getLogger(__name__)

APP = "CellViewer"
LOCK_SUFFIX = ".lock"
# An empty or half-written lock younger than this may be being written right now by an app that
# has just created it (create, then write): wait for it rather than take it over.
PARTIAL_WRITE_GRACE_S = 2.0
_MAX_PID = 2**32 - 1  # Windows process ids are DWORDs; POSIX ones are smaller


@dataclass(frozen=True)
class LockOwner:
    """Who holds a project: the lock file's record."""

    pid: int
    host: str
    user: str
    app: str
    started_at: str  # ISO 8601, UTC

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=1) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> LockOwner | None:
        """The record in a lock file, or None when it is empty or not a lock record (a crash
        mid-write, or a foreign file)."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(raw, dict):
            return None
        pid, host = raw.get("pid"), raw.get("host")
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= _MAX_PID:
            return None
        if not isinstance(host, str) or not host:
            return None
        return cls(pid=pid, host=host, user=str(raw.get("user") or "unknown"),
                   app=str(raw.get("app") or APP), started_at=str(raw.get("started_at") or ""))

    @property
    def on_this_host(self) -> bool:
        return self.host.lower() == _host().lower()

    def since(self) -> str:
        """``started_at`` in this computer's local time, for people (``2025-03-04 14:05``)."""
        try:
            when = datetime.fromisoformat(self.started_at)
        except ValueError:
            return self.started_at or "an unknown time"
        if when.tzinfo is not None:
            when = when.astimezone()
        return when.strftime("%Y-%m-%d %H:%M")


class ProjectInUseError(ProjectError):
    """Another CellViewer holds the project's lock. The message names the project file and the
    owner; ``owner`` (a :class:`LockOwner`) and its fields ``user``, ``host``, ``pid`` and
    ``started_at`` are attributes, as are ``project_path``, ``lock_path`` and ``checkable``
    (False when the owner runs on another computer, so nobody here can tell if it still runs)."""

    def __init__(self, project_path: Path, lock_path: Path, owner: LockOwner) -> None:
        self.project_path = project_path
        self.lock_path = lock_path
        self.owner = owner
        self.user = owner.user
        self.host = owner.host
        self.pid = owner.pid
        self.started_at = owner.started_at
        self.checkable = owner.on_this_host
        super().__init__(
            f"{project_path} is open in {owner.app} by {owner.user} on {owner.host} "
            f"(process {owner.pid}) since {owner.since()}"
        )


def lock_path_for(project_path: str | os.PathLike) -> Path:
    """``demo.cvproj`` → ``demo.cvproj.lock`` in the same folder."""
    project_path = Path(project_path).expanduser().absolute()
    return project_path.with_name(project_path.name + LOCK_SUFFIX)


class ProjectLock:
    """The lock on one project, as acquired by :meth:`acquire`.

    Attributes: ``project_path``, ``path`` (the lock file), ``held`` (False when it could not be
    taken, e.g. a read-only folder, or after :meth:`release`), ``reason`` (why not, else ""),
    ``owner`` (our :class:`LockOwner`), ``took_over`` (an earlier lock was replaced),
    ``previous_owner`` (its record; None when it was unreadable) and ``forced`` (it was replaced
    although its owner may still run). A context manager: leaving the block releases it.
    """

    def __init__(self, project_path: Path, path: Path, owner: LockOwner, *, held: bool,
                 reason: str = "", took_over: bool = False,
                 previous_owner: LockOwner | None = None, forced: bool = False) -> None:
        # Use acquire().
        self.project_path = project_path
        self.path = path
        self.owner = owner
        self.held = held
        self.reason = reason
        self.took_over = took_over
        self.previous_owner = previous_owner
        self.forced = forced
        self._content = owner.to_bytes()

    @classmethod
    def acquire(cls, project_path: str | os.PathLike, *, user: str,
                force: bool = False) -> ProjectLock:
        """Lock ``project_path`` for ``user``.

        Raises :class:`ProjectInUseError` when another running CellViewer (or one on another
        computer) holds it, unless ``force``. Never raises for a folder where no lock can be
        made: the lock then has ``held == False`` and a ``reason``.
        """
        project_path = Path(project_path).expanduser().absolute()
        path = lock_path_for(project_path)
        key = _key(path)
        with _REGISTRY_LOCK:
            shared = _HELD.get(key)
            if shared is not None:
                owner, count = shared
                if _read(path) == owner.to_bytes():  # still ours: share it
                    _HELD[key] = (owner, count + 1)
                    return cls(project_path, path, owner, held=True)
                del _HELD[key]  # taken over by another app since: judge it like any other
            lock = cls._acquire_file(project_path, path, user, force)
            if lock.held:
                _HELD[key] = (lock.owner, 1)
            return lock

    @classmethod
    def _acquire_file(cls, project_path: Path, path: Path, user: str,
                      force: bool) -> ProjectLock:
        ours = LockOwner(pid=os.getpid(), host=_host(), user=user, app=APP,
                         started_at=utc_now())
        took_over, previous, forced = False, None, False
        deadline = time.monotonic() + PARTIAL_WRITE_GRACE_S + 1.0
        last_owner: LockOwner | None = None
        while time.monotonic() < deadline:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
            except FileExistsError:
                pass
            except OSError as e:
                return cls(project_path, path, ours, held=False,
                           reason=f"cannot create the lock file {path}: {_why(e)}")
            else:
                try:
                    try:
                        os.write(fd, ours.to_bytes())
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as e:  # disk full, quota: leave no half-written lock behind
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    return cls(project_path, path, ours, held=False,
                               reason=f"cannot write the lock file {path}: {_why(e)}")
                return cls(project_path, path, ours, held=True, took_over=took_over,
                           previous_owner=previous, forced=forced)

            data = _read(path)
            if data is None:
                continue  # released between our create and our read: try again
            owner = last_owner = LockOwner.from_bytes(data)
            if owner is None and _age_s(path) < PARTIAL_WRITE_GRACE_S and not force:
                time.sleep(0.05)  # probably being written right now
                continue
            stale = owner is None or _is_stale(owner)
            if owner is not None and not stale and not force:
                raise ProjectInUseError(project_path, path, owner)
            try:
                moved = _remove_if_unchanged(path, data)
            except OSError as e:
                return cls(project_path, path, ours, held=False,
                           reason=f"cannot replace the lock file {path}: {_why(e)}")
            if moved:
                took_over, previous, forced = True, owner, forced or not stale
                log.info("%s: took over the lock of %s (%s)", project_path,
                         "an unreadable lock file" if owner is None else
                         f"process {owner.pid} on {owner.host}",
                         "forced" if not stale else "stale")
        # The file kept changing under us: another app is taking the lock right now.
        if last_owner is not None and not force:
            raise ProjectInUseError(project_path, path, last_owner)
        return cls(project_path, path, ours, held=False,
                   reason=f"the lock file {path} kept changing; another app is opening the "
                          "project at the same time")

    def still_held(self) -> bool:
        """True while the lock file holds our record (False once another app forced it over)."""
        return self.held and _read(self.path) == self._content

    def release(self) -> None:
        """Give the lock back: remove the file if it still holds our record and no other holder
        in this process shares it. Idempotent; never raises (a missing file is fine)."""
        if not self.held:
            return
        self.held = False
        key = _key(self.path)
        with _REGISTRY_LOCK:
            shared = _HELD.get(key)
            if shared is not None and shared[0] == self.owner:
                if shared[1] > 1:
                    _HELD[key] = (shared[0], shared[1] - 1)
                    return
                del _HELD[key]
            try:
                _remove_if_unchanged(self.path, self._content)
            except OSError as e:
                log.warning("%s: could not remove the lock file: %s", self.path, _why(e))

    def __enter__(self) -> ProjectLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else f"not held ({self.reason})" if self.reason else "released"
        return f"ProjectLock({str(self.project_path)!r}, {state})"


# --- this process's locks ----------------------------------------------------------------------
# Lock file (normalised path) -> (our record in it, how many ProjectLock objects share it).
_HELD: dict[str, tuple[LockOwner, int]] = {}
_REGISTRY_LOCK = threading.RLock()


def _release_all_at_exit() -> None:
    """An app that exits without closing its window still leaves no lock behind."""
    with _REGISTRY_LOCK:
        for key, (owner, _count) in list(_HELD.items()):
            with contextlib.suppress(OSError):
                _remove_if_unchanged(Path(key), owner.to_bytes())
        _HELD.clear()


atexit.register(_release_all_at_exit)


# --- files -------------------------------------------------------------------------------------
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def _key(path: Path) -> str:
    return os.path.normcase(str(path))


def _read(path: Path) -> bytes | None:
    """The lock file's bytes, or None when there is none. An unreadable file reads as b"" (it is
    then judged corrupt and taken over, if its folder allows)."""
    try:
        with open(path, "rb") as f:
            return f.read(64 * 1024)
    except FileNotFoundError:
        return None
    except OSError:
        return b""


def _age_s(path: Path) -> float:
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return float("inf")


def _remove_if_unchanged(path: Path, expected: bytes) -> bool:
    """Remove ``path`` only if it holds ``expected``; True if it was removed.

    Rename it aside first (atomic: of two apps doing this, one gets the file), then look at what
    was moved: if it is not what the caller judged (another app wrote a fresh lock in between),
    put it back.
    """
    aside = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        data = aside.read_bytes()
        if data == expected:
            return True
        with contextlib.suppress(FileExistsError):  # a newer lock is already back in place
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(aside)


def _why(e: OSError) -> str:
    return e.strerror or str(e)


# --- hosts and processes -----------------------------------------------------------------------
def _host() -> str:
    return socket.gethostname() or "unknown-host"


def _is_stale(owner: LockOwner) -> bool:
    """A lock nobody holds any more. Only a process on this computer can be checked; a lock with
    our own process id that is not in ``_HELD`` was written by an earlier process (ids are
    reused), since this one records every lock it writes."""
    if not owner.on_this_host:
        return False
    if owner.pid == os.getpid():
        return True
    return not pid_alive(owner.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this computer (True when it cannot be told)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    except OSError:
        return True
    return True


def _pid_alive_windows(pid: int) -> bool:
    # os.kill(pid, 0) on Windows sends CTRL_C_EVENT to the process group: never use it here.
    import ctypes
    from ctypes import wintypes

    process_query_limited_information = 0x1000
    still_active = 259
    error_access_denied = 5
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.GetExitCodeProcess.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
    kernel32.GetExitCodeProcess.restype = wintypes.BOOL
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    kernel32.CloseHandle.restype = wintypes.BOOL
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        # No such process (ERROR_INVALID_PARAMETER), unless we may merely not look at it.
        return ctypes.get_last_error() == error_access_denied  # type: ignore[attr-defined]
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: the safe answer
        return code.value == still_active  # (a process that exited with 259 reads as alive)
    finally:
        kernel32.CloseHandle(handle)
