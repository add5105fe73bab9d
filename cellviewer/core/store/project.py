"""ProjectStore: one CellViewer project, one SQLite file.

Durability: the file runs in WAL mode. Every public method that changes something is one
transaction, committed before it returns; a commit is in the write-ahead log when the call
returns, so it survives a crash of the app and a ``kill -9``. The store's own connection runs
``synchronous = NORMAL``: its commits do not wait for the disk. The background checkpointer
(checkpoint.py, ``synchronous = FULL`` on its own connection), poked by every commit, first
fsyncs the log and then copies it into the database file, so a commit reaches the disk a moment
later, off the caller's thread. A power cut in that moment may lose the last action; it never
damages the file (SQLite's WAL guarantee). Measured (benchmarks/bench_gui_stalls.py): with
``FULL`` the fsync of a relabelling of 1,000 scattered cells (~3,500 dirty pages) blocked the
GUI thread 15-30 ms of its 60-80 ms; a person clicking does notice that as a stutter.

Thread use: a store belongs to the thread that opened it (sqlite3's rule). A worker thread that
needs to read while the GUI writes opens its own ``ProjectStore.open(path, readonly=True)``; WAL
lets it read a consistent snapshot without blocking the writer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cellviewer.core.store import integrity
from cellviewer.core.store import undo as _undo
from cellviewer.core.store.base import guard_errors, read_only_reason, store_errors, translate
from cellviewer.core.store.cell_columns import CellColumnsMixin
from cellviewer.core.store.cells import CellsMixin
from cellviewer.core.store.checkpoint import Checkpointer
from cellviewer.core.store.classes import ClassesMixin
from cellviewer.core.store.common import (
    SUFFIX,
    current_user,
    inserted_id,
    utc_now,
)
from cellviewer.core.store.images import ImagesMixin
from cellviewer.core.store.merging import MergingMixin
from cellviewer.core.store.models import ModelsMixin
from cellviewer.core.store.records import (
    ChangeEvent,
    HistoryRecord,
    OperationRecord,
    ProjectDamagedError,
    ProjectError,
    ProjectReadOnlyError,
)
from cellviewer.core.store.regions import RegionsMixin
from cellviewer.core.store.schema import APPLICATION_ID, NEW_UUID_SQL, SCHEMA_VERSION, migrate

log = logging.getLogger(__name__)

#: actions that change no image's number of cells (the cached counts stay valid)
COUNT_NEUTRAL = frozenset({"label", "review", "move", "accept", "region-status"})


@guard_errors
class ProjectStore(ImagesMixin, ClassesMixin, CellsMixin, CellColumnsMixin, ModelsMixin,
                   RegionsMixin, MergingMixin):
    """A CellViewer project: images, classes, cells, regions, models, predictions, history
    and undo.

    Use ``ProjectStore.create(path)`` or ``ProjectStore.open(path)``, ideally as a context
    manager. Cell ids are UUID strings; coordinates are level-0 pixels of their image.
    """

    SUFFIX = SUFFIX

    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool) -> None:
        # Use create() or open().
        self.path = path
        self._conn = conn
        self._readonly = readonly
        self._op: _undo.PendingOp | None = None
        self._listeners: list[Callable[[ChangeEvent], None]] = []
        self._user = current_user()
        self._user_provider: Callable[[], str] | None = None
        self._counts: dict[int, int] | None = None
        self._data_version = -1
        self._one_count: dict[int, tuple[int, int]] = {}
        # This connection as the author of actions: who may undo them (undo.py).
        self._session = _undo.Session.start(utc_now())
        self._session_borrowed = False  # a worker's connection writing as another store
        weakref.finalize(self, _undo.session_ended, self._session.id)
        self._read_only_reason = "opened read-only" if readonly else ""
        self._side_files_before: frozenset[str] = frozenset({"-wal", "-shm"})  # (open() sets)
        self._open_check: integrity.CheckResult | None = None
        self._checkpointer: Checkpointer | None = None
        if not readonly:
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # done by the Checkpointer thread
            conn.execute("PRAGMA journal_size_limit = 67108864")  # keep at most 64 MiB of log
            self._checkpointer = Checkpointer(path)
            # A store dropped without close() still ends its thread.
            weakref.finalize(self, self._checkpointer.close)

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def create(cls, path: str | os.PathLike, name: str | None = None, *,
               overwrite: bool = False) -> ProjectStore:
        """Create a new, empty project file (``ProjectError`` if it exists, unless
        ``overwrite``)."""
        path = Path(path).expanduser().absolute()
        if path.exists():
            if not overwrite:
                raise ProjectError(f"{path}: a file of that name already exists")
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
        if not path.parent.is_dir():
            raise ProjectError(f"{path}: folder {path.parent} does not exist")
        if read_only_reason(path):
            raise ProjectReadOnlyError(path, f"cannot create the project: "
                                             f"{read_only_reason(path)}")
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        except sqlite3.Error as e:
            raise translate(path, e, "cannot create the project") from e
        try:
            with store_errors(path, "cannot create the project"):
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                _configure(conn)
                conn.execute("BEGIN IMMEDIATE")
                migrate(conn, 0)
                now, user = utc_now(), current_user()
                conn.executemany(
                    "INSERT INTO project (key, value) VALUES (?, ?)",
                    [("name", name or path.stem), ("created_at", now), ("created_by", user),
                     ("app", "cellviewer")],  # the id: see schema v4
                )
                conn.execute("COMMIT")
                conn.executescript(_undo.TEMP_SCHEMA)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):  # all ours: just made
                p.unlink(missing_ok=True)
            raise
        return cls(path, conn, readonly=False)

    @classmethod
    def open(cls, path: str | os.PathLike, *, readonly: bool = False,
             check: bool | None = None,
             check_budget_s: float | None = integrity.OPEN_CHECK_BUDGET_S) -> ProjectStore:
        """Open an existing project; ``ProjectError`` naming the file when it is missing, is not
        a CellViewer project, or comes from a newer CellViewer. Older files are migrated.

        ``readonly``: open it read-only on purpose. A file or folder that cannot be written
        (read-only media, a write-protected file) opens read-only by itself;
        :attr:`read_only_reason` says why, and every edit then raises ProjectReadOnlyError.
        ``check``: check the file's integrity first (see ``integrity.check_at_open``; bounded
        by ``check_budget_s``); the default checks every open but the read-only snapshots that
        worker threads take of a project already open. A file that fails it (or that SQLite
        finds damaged on the way) raises :class:`ProjectDamagedError`. A refused open closes
        its connection and leaves no ``-wal``/``-shm`` file that it made."""
        path = Path(path).expanduser().absolute()
        if not path.exists():
            raise ProjectError(f"{path}: no such project file")
        if path.is_dir():
            raise ProjectError(f"{path}: is a folder, not a project file")
        reason = read_only_reason(path) or ("opened read-only" if readonly else "")
        read_only = bool(reason)
        if check is None:
            check = not readonly
        before = integrity.side_files(path)
        # A file that cannot be written (read-only file or folder) and that nobody has open (no
        # side files) is read as immutable: SQLite then makes no -wal/-shm, which it could not
        # make in a read-only folder and would leave behind beside a read-only file. With side
        # files present (someone has it open, or a crash left them) it is read through them,
        # unless the folder is read-only and the -shm is missing.
        immutable = read_only and integrity.read_as_immutable(path, before)
        if immutable and "-wal" in before:
            reason += (" (the changes in its -wal file that were never copied into it cannot "
                       "be read from there)")
        try:
            conn = (integrity.connect_read_only(path, immutable=immutable) if read_only else
                    sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, isolation_level=None,
                                    timeout=10.0))
        except sqlite3.Error as e:
            raise translate(path, e, "cannot open the project") from e
        try:
            result = _prepare(conn, path, read_only, check, check_budget_s)
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            integrity.remove_side_files_we_made(path, before)
            if isinstance(exc, ProjectError):
                raise
            if isinstance(exc, sqlite3.Error | ValueError):  # decoding a damaged value
                raise translate(path, exc, "cannot open the project") from exc
            raise
        store = cls(path, conn, readonly=read_only)
        store._side_files_before = before
        store._read_only_reason = reason if read_only else ""
        store._open_check = result
        return store

    def close(self) -> None:
        """Close the project (idempotent; never raises for a damaged file: the connection is
        closed whatever SQLite says on the way)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            if not self._session_borrowed:  # the lender's session goes on
                with contextlib.suppress(sqlite3.Error):
                    self._session.end(None if self._readonly else self._conn, utc_now())
            with contextlib.suppress(sqlite3.Error):
                if not self._readonly:
                    self._conn.execute("PRAGMA optimize")
            self._conn.close()
            self._conn = None  # type: ignore[assignment]
            if self._readonly:  # a read-only connection cannot remove the side files it made
                integrity.tidy_after_read_only(self.path, self._side_files_before)

    def connection_for_worker(self) -> ProjectStore:
        """A second connection to this project, for a worker thread that writes on this
        store's behalf (a large undo or redo, which would block the window for seconds): the
        same user and the same session, so what it does is this store's own action and the
        undo turns stay with this session. Open and close it in the worker thread; then call
        :meth:`external_change` on this store, on its thread, for the listeners."""
        self._check_writable(needs_user=False)
        worker = ProjectStore.open(self.path, check=False)
        _undo.session_ended(worker._session.id)  # its own session never writes
        worker._session, worker._session_borrowed = self._session, True
        worker._user = self._user
        return worker

    def flip_size(self, direction: str) -> int:
        """How many cells the next undo (``"undo"``) or redo would touch (0: nothing to
        do), so the caller can decide to run it in the background."""
        row = self._next(direction)
        if row is None:
            return 0
        (n,) = self._conn.execute("SELECT n_cells FROM operations WHERE id = ?",
                                  (row[0],)).fetchone()
        return int(n or 0)

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProjectStore({str(self.path)!r})"

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def read_only(self) -> bool:
        """True when edits are refused (same as :attr:`readonly`); see :attr:`read_only_reason`."""
        return self._readonly

    @property
    def read_only_reason(self) -> str:
        """Why the project is read-only, for people ("the file p.cvproj is read-only", "its
        folder /media/cd is read-only", "opened read-only"); "" when writable."""
        return self._read_only_reason

    @property
    def open_check(self) -> integrity.CheckResult | None:
        """The integrity check made when the project was opened (None: not checked). When it
        is not ``complete`` (a huge project, beyond the time budget) the app offers the full
        check (:func:`cellviewer.core.store.integrity.check_project`)."""
        return self._open_check

    @property
    def user(self) -> str:
        """Who is recorded as making the changes (``CELLVIEWER_USER``, else the login)."""
        return self._user

    @user.setter
    def user(self, value: str) -> None:
        value = str(value).strip()
        if not value:
            raise ValueError("user name must not be empty")
        self._user = value

    @property
    def user_provider(self) -> Callable[[], str] | None:
        """Asked for the editing user's name before every change when set (the app's project
        session sets it, so that no edit from any panel reaches the project without a name);
        it may raise to refuse the edit. None: :attr:`user` as set (scripts, tests)."""
        return self._user_provider

    @user_provider.setter
    def user_provider(self, provider: Callable[[], str] | None) -> None:
        self._user_provider = provider

    @property
    def name(self) -> str:
        row = self._conn.execute("SELECT value FROM project WHERE key = 'name'").fetchone()
        return row[0] if row else self.path.stem

    def setting(self, key: str, default: str | None = None) -> str | None:
        """A per-project setting of the app (the active model, ...), stored in the project."""
        row = self._conn.execute(
            "SELECT value FROM project WHERE key = ?", (f"setting:{key}",)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str | None) -> None:
        """Keep (None: forget) a per-project setting. Not an edit of the data: no user needed,
        not undoable, no history."""
        with self._write(kinds=("settings",), needs_user=False):
            if value is None:
                self._conn.execute("DELETE FROM project WHERE key = ?", (f"setting:{key}",))
            else:
                self._conn.execute("INSERT OR REPLACE INTO project (key, value) VALUES (?, ?)",
                                   (f"setting:{key}", str(value)))

    def set_name(self, name: str) -> None:
        with self._write():
            self._conn.execute(
                "INSERT OR REPLACE INTO project (key, value) VALUES ('name', ?)", (name,)
            )

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" when sound) plus a foreign-key check."""
        result = self._conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result == "ok" and self._conn.execute("PRAGMA foreign_key_check").fetchone():
            return "foreign key violations"
        return result

    # ------------------------------------------------------------------ change listeners

    def add_listener(self, callback: Callable[[ChangeEvent], None]) -> None:
        """Call ``callback(ChangeEvent)`` after every committed change (including undo)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[ChangeEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def _notify(self, event: ChangeEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # a broken view must not make a saved edit look failed
                log.exception("project change listener %r failed", callback)

    def external_change(self, kinds: Iterable[str] = ("cells", "classes", "images")) -> None:
        """Another connection (a worker's import, say) changed the project: tell the listeners
        that what they show must be read again (a change event naming no cells)."""
        self._forget_counts()
        self._notify(ChangeEvent(frozenset(kinds), frozenset(), None, "external", None))

    # ------------------------------------------------------------------ transactions

    def _check_writable(self, needs_user: bool = True) -> None:
        if self._conn is None:
            raise ProjectError(f"{self.path}: the project is closed")
        if self._readonly:
            why = self._read_only_reason or "opened read-only"
            raise ProjectReadOnlyError(
                self.path, f"the project is read-only ({why}); the change was not made")
        if needs_user and self._user_provider is not None and self._op is None:
            self.user = self._user_provider()

    @contextlib.contextmanager
    def _operation(self, action: str, description: str) -> Iterator[_undo.PendingOp]:
        """One undoable user action = one transaction. Nested calls join the open action."""
        if self._op is not None:
            yield self._op
            return
        self._check_writable()
        conn = self._conn
        with store_errors(self.path):
            yield from self._operation_body(conn, action, description)

    def _operation_body(self, conn: sqlite3.Connection, action: str,
                        description: str) -> Iterator[_undo.PendingOp]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._session.record(conn)
            now = utc_now()
            op_id = inserted_id(conn.execute(
                "INSERT INTO operations (uuid, action, description, user, at, state, session,"
                f" last_user, last_at) VALUES ({NEW_UUID_SQL}, ?, ?, ?, ?, 'done', ?, ?, ?)",
                (action, description, self._user, now, self._session.id, self._user, now),
            ))
            op = _undo.PendingOp(op_id, action, description)
            self._op = op
            yield op
            if op.changed:
                _undo.finish(conn, op)
                conn.execute("COMMIT")
                self._poke()
            else:
                conn.execute("ROLLBACK")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget_counts()
            raise
        finally:
            self._op = None
        if op.changed:
            self._after_change(op)

    @contextlib.contextmanager
    def _write(self, kinds: Iterable[str] = (), image_ids: Iterable[int] = (),
               needs_user: bool = True) -> Iterator[None]:
        """A change that is not undoable (models, predictions, relinking an image)."""
        if self._op is not None:  # inside a batch: part of its transaction
            yield
            self._op.changed = True
            self._op.kinds.update(kinds)
            return
        self._check_writable(needs_user)
        with store_errors(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
                self._poke()
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        kinds = frozenset(kinds)
        if kinds & {"cells", "images"}:
            self._forget_counts()
        if kinds:
            self._notify(ChangeEvent(kinds, frozenset(int(i) for i in image_ids)))

    def _poke(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def wait_for_checkpoint(self, timeout: float | None = 30.0) -> bool:
        """Wait until the write-ahead log has been copied into the database file (benchmarks,
        tests, or before copying the project file elsewhere while it is open)."""
        return self._checkpointer.wait_idle(timeout) if self._checkpointer else True

    def _after_change(self, op: _undo.PendingOp) -> None:
        # relabelling, reviewing and moving keep every image's count: no recount for them
        if "images" in op.kinds or ("cells" in op.kinds and op.action not in COUNT_NEUTRAL):
            self._forget_counts()
        rows = op.touched_rows() if "cells" in op.kinds else None
        self._notify(ChangeEvent(frozenset(op.kinds), frozenset(op.image_ids), op.id, op.action,
                                 rows))

    @contextlib.contextmanager
    def batch(self, description: str, action: str = "batch") -> Iterator[ProjectStore]:
        """Group several edits into one undoable action and one transaction::

            with store.batch("Import points.csv"):
                store.add_image(...); store.add_class(...); store.add_cells(...)

        If anything inside raises, nothing of the batch is kept.
        """
        with self._operation(action, description):
            yield self

    # ------------------------------------------------------------------ history and undo

    def history(self, cell_id: str | None = None, *, op_id: int | None = None,
                limit: int | None = None) -> list[HistoryRecord]:
        """The audit trail, oldest first (of one cell, or one action; ``limit``: the newest
        ``limit`` rows)."""
        where: list[str] = []
        args: list[str | int] = []
        if cell_id is not None:
            where.append("cell_uuid = ?")
            args.append(str(cell_id))
        if op_id is not None:
            where.append("op_id = ?")
            args.append(int(op_id))
        sql = ("SELECT id, cell_uuid, image_id, op_id, action, old_class, new_class, old_status,"
               " new_status, source, user, at, detail FROM history")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._conn.execute(sql, args).fetchall()[::-1]
        return [_history_record(r) for r in rows]

    def operations(self, limit: int | None = 50) -> list[OperationRecord]:
        """The most recent actions, newest first."""
        sql = ("SELECT id, action, description, user, at, state, n_cells FROM operations"
               " ORDER BY id DESC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [OperationRecord(*r) for r in self._conn.execute(sql)]

    def _next(self, direction: str) -> tuple[int, str] | None:
        sql = ("SELECT id, description FROM operations WHERE state = 'done' ORDER BY id DESC"
               if direction == "undo" else
               "SELECT id, description FROM operations WHERE state = 'undone' ORDER BY id")
        return self._conn.execute(sql + " LIMIT 1").fetchone()

    def can_undo(self) -> bool:
        return self._next("undo") is not None

    def can_redo(self) -> bool:
        return self._next("redo") is not None

    def undo_description(self) -> str | None:
        """What undo would revert (for an "Undo …" menu entry), or None."""
        row = self._next("undo")
        return row[1] if row else None

    def redo_description(self) -> str | None:
        row = self._next("redo")
        return row[1] if row else None

    def undo(self) -> bool:
        """Revert the latest action; False when there is nothing to undo.
        :class:`UndoConflictError` (nothing changed) when another session wrote it or wrote
        since: another process with the project open, or another user's earlier session
        (see "Who may undo" in undo.py)."""
        return self._flip("undo")

    def redo(self) -> bool:
        """Repeat the latest undone action; False when there is nothing to redo.
        :class:`UndoConflictError` as for :meth:`undo`."""
        return self._flip("redo")

    def _flip(self, direction: str) -> bool:
        if self._op is not None:
            raise ProjectError(f"cannot {direction} inside a batch")
        self._check_writable()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = self._next(direction)
            if row is None:
                conn.execute("ROLLBACK")
                return False
            _undo.check_turn(conn, row[0], direction, self._session, self._user, self.path)
            self._session.record(conn)
            result = _undo.flip(conn, row[0], direction, self._user, utc_now(),
                                session=self._session.id)
            conn.execute("COMMIT")
            self._poke()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        result.action = direction
        self._after_change(result)
        return True


def _history_record(row: tuple) -> HistoryRecord:
    """A row of history's SELECT in ``ProjectStore.history`` (its detail is JSON)."""
    (row_id, cell_id, image_id, op_id, action, old_class, new_class, old_status, new_status,
     source, user, at, detail) = row
    return HistoryRecord(row_id, cell_id, image_id, op_id, action, old_class, new_class,
                         old_status, new_status, source, user, at,
                         detail=json.loads(detail) if detail else {})


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _prepare(conn: sqlite3.Connection, path: Path, read_only: bool, check: bool,
             budget_s: float | None) -> integrity.CheckResult | None:
    """What opening does on the new connection: is it a project, of which version, is it
    sound (``check``), then the migration, WAL and the session's temporary tables. Raises
    ProjectError (or an SQLite error the caller translates)."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        code = getattr(e, "sqlite_errorcode", 0) & 0xFF
        if code == 26 and _header(path) != _SQLITE_MAGIC:  # SQLITE_NOTADB, and no SQLite magic
            raise ProjectError(
                f"{path}: not a CellViewer project (not an SQLite database: {e})") from e
        raise
    if app_id != APPLICATION_ID:
        raise ProjectError(
            f"{path}: not a CellViewer project (an SQLite file of another application)"
            if app_id or version else f"{path}: not a CellViewer project"
        )
    if version > SCHEMA_VERSION:
        raise ProjectError(
            f"{path}: made by a newer CellViewer (project format {version}; this "
            f"version reads up to {SCHEMA_VERSION}); update CellViewer to open it"
        )
    _configure(conn)
    result = integrity.check_at_open(conn, path, budget_s) if check else None
    if result is not None and not result.ok:
        raise ProjectDamagedError(
            path, f"the project file is damaged: {result.summary}. Open it read-only to "
                  "export what can still be read, or restore a backup")
    if version < SCHEMA_VERSION:
        if read_only:
            raise ProjectError(
                f"{path}: project format {version} needs upgrading; open it writable"
                " (copy it to a writable folder first if it is on read-only media)"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrate(conn, version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if not read_only:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(_undo.TEMP_SCHEMA)
    return result


def _header(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(len(_SQLITE_MAGIC))
    except OSError:
        return b""


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")  # the checkpointer syncs (see above)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache: bulk inserts, scans
    conn.execute("PRAGMA temp_store = MEMORY")
    # PRAGMA optimize (at close) samples instead of reading whole million-row indexes.
    conn.execute("PRAGMA analysis_limit = 1000")
