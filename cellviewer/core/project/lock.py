"""A lock file beside a project, so two CellViewer instances never edit one project at once.

Two apps writing one ``.cvproj`` each keep their own undo stack over the same cells; the stacks
interleave and a pathologist loses track of (or undoes) the other's work. So the main window takes
this lock before it opens a project and keeps it while the project is open. Worker threads of the
same app open their own store connections without it: they are the same user's work.

The lock is ``<project file name>.lock`` (``demo.cvproj.lock``), a small JSON record of who holds
it: ``{"pid", "host", "user", "app": "CellViewer", "started_at"}`` (ISO 8601 UTC). The record is
written and fsynced into a temporary file first, then hard-linked into place (``link`` fails when
the lock exists, so only one creator wins): a lock file is never visible empty or half-written, so
an empty or garbled one is always a crash's leftover (of the older create-then-write protocol, or
of a file system without hard links, where that protocol is still the fallback).

An existing lock is judged, not trusted:

- held by a process on this computer that is still running: refused, with a
  :class:`ProjectInUseError` that names the project file and the owner;
- held by a process on this computer that is no longer running (the app crashed or was killed),
  or an empty or unreadable file (a crash mid-write of the old protocol; one younger than
  ``PARTIAL_WRITE_GRACE_S`` is waited for): stale, taken over without a question
  (``lock.took_over``);
- held by another computer: cannot be checked from here, so treated as in use;
- ``force=True`` (the user chose "Open anyway") takes any lock over.

Within one process the lock is shared and counted: opening the project again (the same window
re-opening it, a second window of the same app) succeeds, and the file goes when the last holder
releases it. A lock file that carries this process's id but that this process never wrote is a
leftover of an earlier process that had the same id (common in containers), so it is stale.

Every removal of a lock file (a stale or forced takeover, a release) happens while holding a
takeover guard, ``<lock>.takeover``, made the same way (temporary file, link) and held for
milliseconds. Under the guard the lock is looked at again and removed only if it is still the very
file that was judged (same inode, size, modification time and bytes); since a lock is only ever
created where there is none, nothing can replace it between that look and the removal. So two apps
taking over one stale lock at the same moment cannot both win, and an app that judged a lock a
moment ago never removes the fresh lock of the app that won since. ``release()`` removes the file
only while it still holds our record. A guard left by a crash (its process gone, or older than
``TAKEOVER_STALE_S``) is renamed aside and removed only if what was moved is the file judged.

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
import errno
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
TAKEOVER_SUFFIX = ".takeover"
# How long to wait for another app's takeover guard (held for milliseconds), and the age at which
# a guard is a crash's leftover whoever wrote it.
TAKEOVER_WAIT_S = 3.0
TAKEOVER_STALE_S = 30.0
# Temporary files of the protocol older than this were left by a crash.
LEFTOVER_AGE_S = 60.0
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
        content = ours.to_bytes()
        took_over, previous, forced = False, None, False
        deadline = time.monotonic() + PARTIAL_WRITE_GRACE_S + TAKEOVER_WAIT_S + 1.0
        last_owner: LockOwner | None = None
        while time.monotonic() < deadline:
            try:
                created = _create_exclusive(path, content)
            except _WriteError as e:  # disk full, quota: no lock was left behind
                return cls(project_path, path, ours, held=False,
                           reason=f"cannot write the lock file {path}: {_why(e.error)}")
            except OSError as e:
                return cls(project_path, path, ours, held=False,
                           reason=f"cannot create the lock file {path}: {_why(e)}")
            if created:
                _sweep_leftovers(path)
                return cls(project_path, path, ours, held=True, took_over=took_over,
                           previous_owner=previous, forced=forced)

            seen = _snapshot(path)
            if seen is None:
                continue  # released between our link and our read: try again
            owner = last_owner = LockOwner.from_bytes(seen.data)
            if owner is None and seen.age_s < PARTIAL_WRITE_GRACE_S and not force:
                # An app of the old protocol (create, then write) or one on a file system
                # without hard links may be writing it right now.
                time.sleep(0.05)
                continue
            stale = owner is None or _is_stale(owner)
            if owner is not None and not stale and not force:
                raise ProjectInUseError(project_path, path, owner)
            _test_pause("judged")
            try:
                removed = _remove_if_same(path, seen)
            except OSError as e:
                return cls(project_path, path, ours, held=False,
                           reason=f"cannot replace the lock file {path}: {_why(e)}")
            if removed is None:
                time.sleep(0.01)  # another app is taking over right now: look again
                continue
            if removed:
                took_over, previous, forced = True, owner, forced or not stale
                log.info("%s: took over the lock of %s (%s)", project_path,
                         "an unreadable lock file" if owner is None else
                         f"process {owner.pid} on {owner.host}",
                         "forced" if not stale else "stale")
                _test_pause("removed")
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
                _remove_if_ours(self.path, self._content)
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
                _remove_if_ours(Path(key), owner.to_bytes())
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


def _test_pause(step: str) -> None:
    """Called between the lock's steps; does nothing. A test replaces it (in a racing process)
    to stop that process at one step and so force an interleaving with another. The steps:
    ``"written"`` (our record is in its temporary file, not yet linked into place),
    ``"judged"`` (an existing lock was judged stale or forced, nothing removed yet),
    ``"guarded"`` (the takeover guard is ours, the lock not yet looked at again) and
    ``"removed"`` (the stale lock is gone, ours not yet linked)."""


class _WriteError(Exception):
    """Our record could not be written (disk full, quota); nothing was left behind."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Snapshot:
    """What was seen at a path: its bytes and which file it was (device, inode, size and
    modification time: a file removed and re-created reads as another file, even when the
    inode number is reused)."""

    data: bytes
    ident: tuple[int, int, int, int]
    age_s: float


def _snapshot(path: Path) -> _Snapshot | None:
    """The file at ``path`` now, or None when there is none. An unreadable file reads as b""
    (it is then judged corrupt and taken over, if its folder allows)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read(64 * 1024)
    except FileNotFoundError:
        return None
    except OSError:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError:
            return _Snapshot(b"", (0, 0, 0, 0), float("inf"))
        data = b""
    return _Snapshot(data, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
                     max(0.0, time.time() - st.st_mtime))


def _temp_name(path: Path, tail: str) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{tail}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _no_hard_links(e: OSError) -> bool:
    """The file system has no hard links (FAT, exFAT, some shares)."""
    return (e.errno in _NO_LINK_ERRNOS
            or getattr(e, "winerror", None) == 1)  # ERROR_INVALID_FUNCTION


_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV,
                   errno.EMLINK}


def _create_exclusive(path: Path, content: bytes) -> bool:
    """Put a file holding ``content`` at ``path`` if there is none; True if ours is there now.

    The content is written and fsynced into a temporary file first, then hard-linked into
    place: ``link`` fails when the target exists, so only one creator wins, and the file is
    never visible empty or half-written. Where the file system has no hard links it falls back
    to ``O_EXCL`` then write (a crash in between leaves an empty file, judged by its age).
    Raises :class:`_WriteError` when the content cannot be written, OSError when the file
    cannot be created."""
    tmp = _temp_name(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
    try:
        try:
            _write_all(fd, content)
        finally:
            os.close(fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _WriteError(e) from e
    try:
        _test_pause("written")
        try:
            os.link(tmp, path)
        except FileExistsError:
            # Over NFS a link can succeed although its reply is lost: then tmp has 2 links.
            with contextlib.suppress(OSError):
                return os.stat(tmp).st_nlink == 2
            return False
        except OSError as e:
            if not _no_hard_links(e):
                raise
            return _create_in_place(path, content)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _create_in_place(path: Path, content: bytes) -> bool:
    """The fallback without hard links: create with ``O_EXCL``, then write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
    except FileExistsError:
        return False
    try:
        try:
            _write_all(fd, content)
        finally:
            os.close(fd)
    except OSError as e:  # leave no half-written lock behind
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise _WriteError(e) from e
    return True


# --- the takeover guard ------------------------------------------------------------------------
# Every removal of a lock file (taking over a stale one, forcing, releasing) happens while holding
# the guard ``<lock>.takeover``, and a lock file is only ever created where there is none (link).
# So while one app holds the guard, the lock file cannot change under it: "look again, then
# remove" is as good as atomic, and an app that judged a lock stale a moment ago can never remove
# the fresh lock of an app that won since. The guard is held for milliseconds; one left by a crash
# (its process gone, or older than TAKEOVER_STALE_S) is renamed aside and removed only if it is
# still the very file judged stale (same inode, size, time and bytes).


def _guard_path(path: Path) -> Path:
    return path.with_name(path.name + TAKEOVER_SUFFIX)


def _guard_stale(seen: _Snapshot) -> bool:
    owner = LockOwner.from_bytes(seen.data)
    if owner is None:
        return seen.age_s >= PARTIAL_WRITE_GRACE_S
    if seen.age_s >= TAKEOVER_STALE_S:
        return True
    # This process holds a guard only inside one call, under _REGISTRY_LOCK: a guard with our
    # id that we are about to take is an earlier process's.
    return owner.on_this_host and (owner.pid == os.getpid() or not pid_alive(owner.pid))


def _take_guard(path: Path) -> bytes | None:
    """Take the takeover guard of the lock ``path``; its content (to release it), or None when
    another app kept it for TAKEOVER_WAIT_S. OSError when it cannot be created at all."""
    guard = _guard_path(path)
    content = (json.dumps({"pid": os.getpid(), "host": _host(), "app": APP,
                           "started_at": utc_now(), "token": uuid.uuid4().hex}) + "\n").encode()
    deadline = time.monotonic() + TAKEOVER_WAIT_S
    while True:
        try:
            if _create_exclusive(guard, content):
                return content
        except _WriteError as e:
            raise e.error from None
        seen = _snapshot(guard)
        if seen is not None and _guard_stale(seen):
            _remove_if_identical(guard, seen)
            continue
        if time.monotonic() > deadline:
            return None
        time.sleep(0.002)


def _release_guard(path: Path, content: bytes) -> None:
    guard = _guard_path(path)
    with contextlib.suppress(OSError):
        if _read(guard) == content:
            os.unlink(guard)


def _remove_if_identical(path: Path, seen: _Snapshot) -> bool:
    """Remove ``path`` only if it is still the very file ``seen`` (used without the guard, for
    a stale guard): rename it aside (of two apps doing this, one gets the file), compare what was
    moved, and link it back if it is another file."""
    aside = _temp_name(path, "old")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        moved = _snapshot(aside)
        if moved is not None and moved.ident == seen.ident and moved.data == seen.data:
            return True
        with contextlib.suppress(OSError):  # (FileExistsError: a newer one is in place)
            os.link(aside, path)
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(aside)


def _remove_if_same(path: Path, seen: _Snapshot) -> bool | None:
    """Remove the lock ``path`` if it is still the file ``seen``, under the guard. True if
    removed, False if it is another file now (or gone), None if the guard was busy."""
    guard = _take_guard(path)
    if guard is None:
        return None
    try:
        _test_pause("guarded")
        now = _snapshot(path)
        if now is None or now.ident != seen.ident or now.data != seen.data:
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
    finally:
        _release_guard(path, guard)


def _remove_if_ours(path: Path, content: bytes) -> None:
    """Remove the lock ``path`` if it holds our record, under the guard. When the guard stays
    busy the file is left: a lock left behind is judged stale once we are gone, while removing
    another app's lock could not be undone."""
    guard = _take_guard(path)
    if guard is None:
        log.warning("%s: another app kept the takeover guard; lock left for later", path)
        return
    try:
        if _read(path) == content:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    finally:
        _release_guard(path, guard)


def _sweep_leftovers(path: Path) -> None:
    """Remove temporary files of this protocol (``<lock>.<pid>-<hex>.tmp`` / ``.old``) that a
    crash left behind; they live for milliseconds, so one older than LEFTOVER_AGE_S is left over.
    A stale guard goes too."""
    prefix = path.name + "."
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            name = entry.name
            if not name.startswith(prefix) or not name.endswith((".tmp", ".old")):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat(follow_symlinks=False).st_mtime > LEFTOVER_AGE_S:
                    os.unlink(entry.path)
    guard = _guard_path(path)
    seen = _snapshot(guard)
    if seen is not None and _guard_stale(seen):
        with contextlib.suppress(OSError):
            _remove_if_identical(guard, seen)


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
