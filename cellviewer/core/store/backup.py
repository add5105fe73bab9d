"""Automatic backups of a project, and restoring one.

A backup is a copy made with SQLite's online backup API (``sqlite3.Connection.backup``) from a
read-only connection of its own, so it runs in a worker thread while the project stays open and
edits go on (WAL: the copy is one consistent snapshot, and writers never wait for it). It is made
only after ``PRAGMA quick_check`` passed on that same snapshot, so a damaged file never pushes a
good backup out. The copy is written beside its final name and renamed into place when complete
(a crash leaves at most a hidden ``.partial`` file, never a half backup under a backup's name).

Where: ``<project file>.backups/`` beside the project (``demo.cvproj.backups/``), the last
:data:`BACKUP_KEEP` kept; where that folder cannot be made (a read-only folder) the app's data
folder (``<data>/backups/<stem>-<hash of the path>/``). Above :data:`BACKUP_MAX_BYTES` (2 GB) no
backup is made: the result says so, for the app to show. When: at open and, while edits happen,
once per :data:`BACKUP_INTERVAL_S` (see :class:`BackupSchedule`); a project unchanged since its
newest backup is not copied again.

:func:`restore_backup` puts a backup in the project's place and keeps the file it replaces aside
(renamed ``<name>.damaged-<time>``, with its ``-wal``/``-shm``): nothing is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cellviewer.core.store import integrity
from cellviewer.core.store.base import store_errors, translate
from cellviewer.core.store.records import (
    ProjectDamagedError,
    ProjectDiskFullError,
    ProjectError,
)

BACKUP_KEEP = 3
BACKUP_MAX_BYTES = 2 * 1024**3
BACKUP_INTERVAL_S = 3600.0
BACKUPS_SUFFIX = ".backups"
_PAGES_PER_STEP = 4096  # pages copied between two looks at should_stop
_STAMP = "%Y%m%d-%H%M%S-%f"  # microseconds: backups made within one second keep their order


@dataclass(frozen=True)
class BackupInfo:
    """One backup on disk: its file, when it was made (UTC, from its name) and its size."""

    path: Path
    made_at: datetime
    size: int


@dataclass(frozen=True)
class BackupResult:
    """What :func:`make_backup` did: the new backup (None when skipped), why it was skipped
    ("" when made) and the old backups it removed to keep the last few."""

    backup: Path | None
    skipped: str = ""
    removed: tuple[Path, ...] = ()

    @property
    def message(self) -> str:
        """One line for the status bar."""
        if self.backup is not None:
            return f"Backup saved: {self.backup}"
        return f"No backup made: {self.skipped}"


class _Stopped(Exception):
    pass


def backup_folder(project: str | os.PathLike) -> Path:
    """Where the backups of ``project`` go: ``<project>.backups/`` when it can be made there,
    else the app's data folder (see the module docstring). Made if missing."""
    project = Path(project).expanduser().absolute()
    beside = project.with_name(project.name + BACKUPS_SUFFIX)
    try:
        beside.mkdir(exist_ok=True)
        if os.access(beside, os.W_OK | os.X_OK):
            return beside
    except OSError:
        pass
    fallback = fallback_backup_folder(project)
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def fallback_backup_folder(project: str | os.PathLike) -> Path:
    """The backups' folder in the app's data folder (projects in read-only folders)."""
    from cellviewer.paths import user_data_dir

    project = Path(project).expanduser().absolute()
    digest = hashlib.sha1(str(project).encode("utf-8")).hexdigest()[:10]
    return user_data_dir() / "backups" / f"{project.stem}-{digest}"


def list_backups(project: str | os.PathLike) -> list[BackupInfo]:
    """The backups of ``project`` (beside it and in the data folder), newest first."""
    project = Path(project).expanduser().absolute()
    pattern = re.compile(re.escape(project.stem) + r"-(\d{8}-\d{6}-\d{6})(?:-(\d+))?" +
                         re.escape(project.suffix) + "$")
    found: list[tuple[datetime, int, BackupInfo]] = []
    for folder in (project.with_name(project.name + BACKUPS_SUFFIX),
                   fallback_backup_folder(project)):
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                m = pattern.match(entry.name)
                if m and entry.is_file():
                    made = datetime.strptime(m.group(1), _STAMP).replace(tzinfo=UTC)
                    info = BackupInfo(entry, made, entry.stat().st_size)
                    found.append((made, int(m.group(2) or 0), info))
    found.sort(key=lambda t: t[:2], reverse=True)
    return [info for *_, info in found]


def make_backup(project: str | os.PathLike, *, keep: int = BACKUP_KEEP,
                max_bytes: int = BACKUP_MAX_BYTES, folder: str | os.PathLike | None = None,
                force: bool = False,
                should_stop: Callable[[], bool] | None = None) -> BackupResult:
    """Back ``project`` up (see the module docstring); runs in any thread (it opens its own
    connection). Skipped, with the reason in the result, above ``max_bytes``, when nothing
    changed since the newest backup (unless ``force``) or when ``should_stop()`` said so.
    Raises ProjectDamagedError when the project fails its quick check (no backup is made, the
    earlier ones stay), ProjectDiskFullError when the backup's disk is full, else ProjectError."""
    project = Path(project).expanduser().absolute()
    if not project.is_file():
        raise ProjectError(f"{project}: no such project file to back up")
    size = sum(p.stat().st_size for p in (project, Path(f"{project}-wal")) if p.exists())
    if size > max_bytes:
        return BackupResult(None, f"{project.name} is {size / 1e9:.1f} GB, above the backup "
                                  f"limit of {max_bytes / 1e9:.1f} GB")
    existing = list_backups(project)
    if not force and existing and existing[0].path.stat().st_mtime >= _changed_at(project):
        return BackupResult(None, f"{project.name} has not changed since its last backup")
    target = Path(folder) if folder is not None else backup_folder(project)
    target.mkdir(parents=True, exist_ok=True)
    final = _free_name(target, project)
    partial = target / f".{final.name}.partial"
    before = integrity.side_files(project)
    try:
        with store_errors(project, "backing up the project"):
            src = integrity.connect_read_only(project)
            try:
                src.execute("BEGIN")  # quick_check and the copy read one snapshot
                check = integrity.run_check(src, full=False, should_stop=should_stop)
                if not check.complete:
                    return BackupResult(None, "stopped before it finished")
                if not check.ok:
                    raise ProjectDamagedError(
                        project, f"no backup made, the project file is damaged ({check.summary}); "
                                 "the earlier backups are kept")
                _copy(src, partial, should_stop)
                src.execute("COMMIT")
            finally:
                src.close()
                integrity.tidy_after_read_only(project, before)
        _fsync(partial)
        os.replace(partial, final)
        _fsync_dir(target)
    except _Stopped:
        _remove_partial(partial)
        return BackupResult(None, "stopped before it finished")
    except OSError as e:
        _remove_partial(partial)
        if e.errno == 28:  # ENOSPC
            raise ProjectDiskFullError(project, f"no backup made: the disk of {target} is "
                                                "full") from e
        raise ProjectError(f"{project}: no backup made in {target} ({e})") from e
    except BaseException:
        _remove_partial(partial)
        raise
    removed = _prune(project, target, keep)
    return BackupResult(final, "", removed)


def restore_backup(project: str | os.PathLike, backup: str | os.PathLike, *,
                   user: str = "restore") -> Path | None:
    """Put ``backup`` in the place of ``project`` (which must not be open; another CellViewer
    holding it raises ProjectInUseError). The file it replaces is kept aside, renamed
    ``<name>.damaged-<time>`` with its ``-wal``/``-shm`` beside it; returns that path (None
    when there was no project file). A backup that fails its own check is refused
    (ProjectDamagedError naming the backup) and nothing is touched."""
    from cellviewer.core.project.lock import ProjectLock

    project = Path(project).expanduser().absolute()
    backup = Path(backup).expanduser().absolute()
    _verify(backup)
    restoring = project.with_name(f".{project.name}.restoring")
    with ProjectLock.acquire(project, user=user):
        try:
            shutil.copyfile(backup, restoring)
            _fsync(restoring)
            aside = None
            if project.exists():
                aside = _free_aside(project)
                os.rename(project, aside)
                for suffix in integrity.SIDE_SUFFIXES:
                    side = Path(f"{project}{suffix}")
                    if side.exists():
                        os.rename(side, Path(f"{aside}{suffix}"))
            os.replace(restoring, project)
            _fsync_dir(project.parent)
        except OSError as e:
            _remove_partial(restoring)
            raise ProjectError(f"{project}: cannot restore the backup {backup.name} ({e})") from e
    return aside


class BackupSchedule:
    """When the app makes a backup: at open, then while edits happen at most once per
    ``interval_s``. Qt-free; ``clock`` is injectable for tests."""

    def __init__(self, interval_s: float = BACKUP_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._edited = False

    def opened(self) -> bool:
        """A project was opened: a backup is due now (True)."""
        self._last, self._edited = None, False
        return True

    def edited(self) -> bool:
        """An edit was committed: True when a backup is due (an interval since the last)."""
        self._edited = True
        return self._last is None or self._clock() - self._last >= self.interval_s

    def started(self) -> None:
        """A backup was started: the next is due an interval after the next edit."""
        self._last, self._edited = self._clock(), False


# ---------------------------------------------------------------------- helpers

def _copy(src: sqlite3.Connection, partial: Path, should_stop: Callable[[], bool] | None
          ) -> None:
    _remove_partial(partial)
    dst = sqlite3.connect(partial, isolation_level=None)
    try:
        def progress(_status: int, _remaining: int, _total: int) -> None:
            if should_stop is not None and should_stop():
                raise _Stopped

        try:
            src.backup(dst, pages=_PAGES_PER_STEP, progress=progress)
        except sqlite3.Error as e:  # the backup's side: its disk, its folder
            raise translate(partial, e, "writing the backup") from e
        dst.execute("PRAGMA journal_mode = DELETE")  # a backup is one file, no log beside it
    finally:
        dst.close()


def _verify(backup: Path) -> None:
    from cellviewer.core.store.schema import APPLICATION_ID

    if not backup.is_file():
        raise ProjectError(f"{backup}: no such backup")
    with store_errors(backup, "checking the backup"):
        conn = integrity.connect_read_only(backup, immutable=True)
        try:
            if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                raise ProjectError(f"{backup}: not a backup of a CellViewer project")
            check = integrity.run_check(conn, full=True)
        finally:
            conn.close()
    if not check.ok:
        raise ProjectDamagedError(backup, f"the backup is damaged too ({check.summary})")


def _changed_at(project: Path) -> float:
    times = [p.stat().st_mtime for p in (project, Path(f"{project}-wal")) if p.exists()]
    return max(times)


def _free_name(folder: Path, project: Path) -> Path:
    stamp = datetime.now(UTC).strftime(_STAMP)
    candidate = folder / f"{project.stem}-{stamp}{project.suffix}"
    n = 1
    while candidate.exists():
        candidate = folder / f"{project.stem}-{stamp}-{n}{project.suffix}"
        n += 1
    return candidate


def _free_aside(project: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    candidate = project.with_name(f"{project.name}.damaged-{stamp}")
    n = 1
    while candidate.exists():
        candidate = project.with_name(f"{project.name}.damaged-{stamp}-{n}")
        n += 1
    return candidate


def _prune(project: Path, folder: Path, keep: int) -> tuple[Path, ...]:
    mine = [b for b in list_backups(project) if b.path.parent == folder]
    removed = []
    for old in mine[max(1, keep):]:
        with contextlib.suppress(OSError):
            old.path.unlink()
            removed.append(old.path)
    return tuple(removed)


def _remove_partial(path: Path) -> None:
    for p in (path, Path(f"{path}-journal")):
        with contextlib.suppress(OSError):
            p.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
