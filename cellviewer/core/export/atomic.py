"""Writing an export file safely: never over the project, never half-written, nothing left behind.

- :func:`check_target` refuses a target that would destroy the project or cannot be a file: the
  project file itself, its ``-wal``/``-shm`` (SQLite's log and index: a CSV there corrupts the
  project at its next open), its lock file and takeover guard, anything inside a
  ``<name>.cvproj.backups`` folder (the automatic backups), an existing SQLite database (another
  project), and a folder. Paths are compared with ``os.path.samefile`` where both exist and as
  resolved paths otherwise, so a symlink, a hard link or a relative path is caught too. The
  refusal is an :class:`ExportError` naming the target and why.
- :func:`atomic_write` writes through a hidden temporary file beside the target (created with
  the user's umask, as any file the user makes), fsynced and renamed over it when the block
  succeeds; on any failure (KeyboardInterrupt included) the
  temporary file is removed and an OSError becomes an :class:`ExportError` naming the target.
- A process killed mid-write cannot remove its temporary file, so each one is recorded before it
  is created: one small JSON file per temporary file in ``<user data>/pending-exports/`` (the
  record is removed once the temporary file is renamed or removed). :func:`remove_leftovers`
  (called when the app starts a project session and before every export) removes the temporary
  files of records whose process is gone.

Why the user's data folder and not beside the project: the temporary files lie beside the export
target, which can be any folder; the data folder is the one place every start knows without
knowing which project will be opened, it is writable where the project's folder is not (a
read-only study), and one file per record needs no lock between threads or apps (creating and
removing a file is atomic; a shared list would need one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cellviewer.core.store import ProjectError

log = logging.getLogger(__name__)

PENDING_DIR = "pending-exports"
BACKUPS_SUFFIX = ".cvproj.backups"
SQLITE_MAGIC = b"SQLite format 3\x00"
# A record of another computer, or of a live process id (possibly reused), older than this is
# left over all the same: no export runs for a week.
RECORD_MAX_AGE_S = 7 * 24 * 3600.0
TEMP_SUFFIX = ".tmp"


class ExportError(ProjectError):
    """An export that was refused or failed; the message names the target and the cause."""


def _test_pause(step: str) -> None:
    """Called between the steps of :func:`atomic_write`; does nothing. A test replaces it to
    stop (and kill) a process at one step: ``"created"`` (the temporary file exists, empty),
    ``"written"`` (the content is in it, not yet renamed over the target)."""


# --- the target --------------------------------------------------------------------------------
def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _same(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if os.path.samefile(a, b):
            return True
    return _real(a) == _real(b)


def _inside(path: Path, folder: Path) -> bool:
    real, top = _real(path), _real(folder)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def protected_paths(project: str | os.PathLike) -> list[tuple[Path, str]]:
    """The files beside a project that an export must never replace, each with what it is."""
    from cellviewer.core.project.lock import TAKEOVER_SUFFIX, lock_path_for

    project = Path(project).expanduser().absolute()
    lock = lock_path_for(project)
    return [
        (project, "the project file"),
        (project.with_name(project.name + "-wal"), "the project's write-ahead log"),
        (project.with_name(project.name + "-shm"), "the project's shared-memory index"),
        (project.with_name(project.name + "-journal"), "the project's rollback journal"),
        (lock, "the project's lock file"),
        (lock.with_name(lock.name + TAKEOVER_SUFFIX), "the project's lock guard"),
    ]


def check_target(target: str | os.PathLike, project: str | os.PathLike | None = None) -> Path:
    """``target`` (absolute) when an export may write it; else :class:`ExportError` naming it
    and why. ``project``: the open project, whose files and backups are refused."""
    path = Path(target).expanduser().absolute()

    def refuse(why: str) -> ExportError:
        return ExportError(f"cannot export to {path}: {why}")

    if path.is_dir():
        raise refuse("it is a folder; choose a file name in it")
    if project is not None:
        project = Path(project).expanduser().absolute()
        for protected, what in protected_paths(project):
            if _same(path, protected):
                raise refuse(f"it is {what} ({protected}); writing there would destroy the "
                             "project")
        backups = project.with_name(project.name + ".backups")
        if _inside(path, backups):
            raise refuse(f"it is inside the project's backups folder ({backups})")
    for folder in (path, *path.parents, Path(_real(path)), *Path(_real(path)).parents):
        if folder.name.lower().endswith(BACKUPS_SUFFIX):
            raise refuse(f"it is inside a project's backups folder ({folder})")
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        if fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            raise refuse("it is a SQLite database (a CellViewer project?); an export never "
                         "replaces one")
    return path


# --- the records of temporary files ------------------------------------------------------------
def pending_dir() -> Path:
    from cellviewer.paths import user_data_dir

    return user_data_dir() / PENDING_DIR


_OURS: set[str] = set()  # records this process wrote and has not removed (its live exports)


def _host() -> str:
    return socket.gethostname() or "unknown-host"


def _record(tmp: Path, target: Path) -> Path | None:
    """Note ``tmp`` before it is created; the record's path (None when the data folder cannot
    be written: the export goes on, without the safety net)."""
    folder = pending_dir()
    record = folder / f"{os.getpid()}-{uuid.uuid4().hex}.json"
    data = json.dumps({"temp": str(tmp), "target": str(target), "pid": os.getpid(),
                       "host": _host(), "created": time.time()}).encode()
    part = record.with_name(record.name + TEMP_SUFFIX)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, record)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(part)
        log.warning("cannot record the temporary file of an export in %s: %s", folder, e)
        return None
    _OURS.add(record.name)
    return record


def _forget(record: Path | None) -> None:
    if record is None:
        return
    _OURS.discard(record.name)
    with contextlib.suppress(OSError):
        os.unlink(record)


def _left_over(raw: dict, age_s: float) -> bool:
    from cellviewer.core.project.lock import pid_alive

    if age_s > RECORD_MAX_AGE_S:
        return True
    pid = raw.get("pid")
    if raw.get("host") != _host() or not isinstance(pid, int):
        return False
    return pid == os.getpid() or not pid_alive(pid)


def remove_leftovers() -> list[Path]:
    """Remove the temporary files of exports whose process was killed (recorded in
    :func:`pending_dir`); returns the files removed. Never raises."""
    folder = pending_dir()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            age = now - entry.stat().st_mtime
            if entry.name.endswith(TEMP_SUFFIX):  # a record half-written by a killed process
                if age > 60:
                    os.unlink(entry.path)
                continue
            if entry.name in _OURS or not entry.name.endswith(".json"):
                continue
            raw = json.loads(Path(entry.path).read_bytes())
            if not isinstance(raw, dict) or not _left_over(raw, age):
                continue
            tmp = Path(str(raw["temp"]))
            # Only a file named as ours is ever removed (a damaged record cannot aim elsewhere).
            if tmp.name.startswith(".") and tmp.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                    removed.append(tmp)
                    log.info("removed %s, left by an export that was killed", tmp)
            os.unlink(entry.path)
    return removed


# --- writing -----------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8",
                 newline: str | None = "", project: str | os.PathLike | None = None
                 ) -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder, renamed over it when the
    block ends without error, removed when anything is raised (KeyboardInterrupt too).

    :func:`check_target` first (``project``: the open project, whose files are refused); an
    OSError (disk full, read-only folder, no permission) becomes an :class:`ExportError` naming
    ``path`` and the cause."""
    path = check_target(path, project)
    if not path.parent.is_dir():
        raise ExportError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    record = _record(tmp, path)
    try:
        try:
            # 0o666 less the umask, as open() makes any file: a shared folder's group can read
            # (and write) the export where the user's umask says so
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except BaseException:
            _forget(record)
            raise
        try:
            _test_pause("created")
            binary = "b" in mode
            with os.fdopen(fd, mode, encoding=None if binary else encoding,
                           newline=None if binary else newline) as fh:
                yield fh
                _test_pause("written")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            _forget(record)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from e
