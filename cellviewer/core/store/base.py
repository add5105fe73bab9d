"""What the parts of ProjectStore share, declared once so that each part type-checks alone.

ProjectStore (project.py) is assembled from mixins, one per kind of data (images.py,
classes.py, cells.py, cell_columns.py, models.py), and they use each other: adding cells checks
the image and the classes, removing an image deletes its cells, every edit runs in the
transaction helpers of project.py. ``StoreBase``, which every mixin inherits, names that shared
state (set by ``ProjectStore.__init__``) and, for the type checker only, the methods defined in
a sibling part. At run time it adds nothing: the stubs exist only under ``TYPE_CHECKING``, so
method lookup is exactly that of the mixins and ProjectStore.

It is also the one place where a failure of the project file becomes the project's own error
(:func:`translate`, :func:`store_errors`, :func:`guard_errors`): SQLite's busy, full,
read-only, corrupt and not-a-database errors, and a stored value that no longer decodes, each
become a :class:`~cellviewer.core.store.records.ProjectFileError` subclass whose message names
the file and the cause. ProjectStore's public methods and its opening and transaction code go
through it, so no raw ``sqlite3`` exception reaches the app.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cellviewer.core.store.records import (
    ProjectBusyError,
    ProjectDamagedError,
    ProjectDiskFullError,
    ProjectError,
    ProjectReadOnlyError,
)

if TYPE_CHECKING:  # annotations only: nothing here is needed at run time
    from collections.abc import Iterable, Sequence
    from contextlib import AbstractContextManager

    import numpy as np

    from cellviewer.core.store import undo as _undo
    from cellviewer.core.store.records import (
        ChangeEvent,
        ClassRecord,
        ImageRecord,
        ModelRecord,
        PredictionArrays,
    )


class StoreBase:
    """The state and cross-part methods of a ProjectStore (see the module docstring)."""

    # Set by ProjectStore.__init__.
    path: Path  # the project file
    _conn: sqlite3.Connection  # this thread's connection (None once closed)
    _readonly: bool
    _user: str  # who is recorded as making the changes
    _op: _undo.PendingOp | None  # the action being recorded, if any
    _counts: dict[int, int] | None  # cells per image, cached (None: read again)
    _data_version: int  # SQLite's data_version when _counts was read
    _one_count: dict[int, tuple[int, int]]  # image id → (data_version, cells): _counts stale

    if TYPE_CHECKING:
        # project.py: the file, transactions and change events.
        @property
        def folder(self) -> Path: ...

        def _operation(self, action: str, description: str
                       ) -> AbstractContextManager[_undo.PendingOp]: ...

        def _write(self, kinds: Iterable[str] = (), image_ids: Iterable[int] = (),
                   needs_user: bool = True) -> AbstractContextManager[None]: ...

        def _notify(self, event: ChangeEvent) -> None: ...

        # images.py
        def image(self, image_id: int) -> ImageRecord: ...

        def _cell_counts(self) -> dict[int, int]: ...

        def _counts_fresh(self) -> bool: ...

        def _image_count(self, image_id: int) -> int: ...

        def _forget_counts(self) -> None: ...

        # cell_columns.py
        def image_cell_count(self, image_id: int) -> int: ...

        # classes.py
        def classes(self) -> list[ClassRecord]: ...

        def class_record(self, class_id: int) -> ClassRecord: ...

        # cells.py
        def _select(self, ids: Sequence[str] | np.ndarray, values: Sequence | None = None,
                    xy: np.ndarray | None = None) -> int: ...

        def _delete_selected(self, op: _undo.PendingOp, action: str) -> int: ...

        def _label_selected(self, op: _undo.PendingOp, source: str | None, action: str,
                            keep_source: bool = False) -> int: ...

        def _scan_instead(self, image_id: int) -> str: ...

        # models.py
        def model(self, model_id: int) -> ModelRecord: ...

        def predictions(self, model_id: int, cell_ids: Sequence[str] | np.ndarray
                        ) -> PredictionArrays: ...

        # regions.py
        def _delete_region_rows(self, op: _undo.PendingOp, ids: list[int]) -> None: ...


# ---------------------------------------------------------------------- translating failures

#: SQLite's primary result codes that name a failure of the file (sqlite3.Error.sqlite_errorcode
#: carries the extended code; its low byte is the primary one)
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
#: what is translated: failures of the database and of decoding what it holds. Programming
#: errors (wrong SQL, a closed connection used) stay what they are: they are bugs, not the file.
_TRANSLATED = (sqlite3.OperationalError, sqlite3.DatabaseError, json.JSONDecodeError,
               UnicodeDecodeError)
_T = TypeVar("_T")


def translate(path: str | os.PathLike, exc: BaseException, doing: str = "") -> ProjectError:
    """The project's own error for ``exc`` raised while working on the project file ``path``
    (``doing``: what was being done, for the message). Already a ProjectError: unchanged."""
    if isinstance(exc, ProjectError):
        return exc
    path = Path(path)
    what = f"{doing}: " if doing else ""
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return ProjectDamagedError(path, f"{what}the project file is damaged: a stored value "
                                         f"cannot be read ({type(exc).__name__}: {exc})")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary in (_BUSY, _LOCKED) or "database is locked" in text:
        holder = lock_holder(path)
        who = f" (it is open in {holder})" if holder else ""
        return ProjectBusyError(path, f"{what}the project file is locked by another program"
                                      f"{who}, which kept it busy beyond the waiting time; "
                                      "nothing was changed, try again", holder)
    if primary == _FULL:
        return ProjectDiskFullError(path, f"{what}the disk is full ({_free_space(path)}); the "
                                          "change was not saved: free some space and try again")
    if primary == _READONLY:
        return ProjectReadOnlyError(path, f"{what}the project cannot be written: "
                                          f"{read_only_reason(path) or text}")
    if primary in (_CORRUPT, _NOTADB) or "malformed" in text or "Could not decode" in text:
        return ProjectDamagedError(path, f"{what}the project file is damaged ({text})")
    if primary == _CANTOPEN and not _folder_writable(path):
        return ProjectReadOnlyError(path, f"{what}the project cannot be opened for writing: "
                                          f"its folder {path.parent} is read-only")
    if primary == _IOERR:
        return ProjectError(f"{path}: {what}the disk reported an error reading or writing the "
                            f"project file ({text})")
    return ProjectError(f"{path}: {what}{text}")


@contextlib.contextmanager
def store_errors(path: str | os.PathLike, doing: str = "") -> Iterator[None]:
    """Run a block on the project file ``path``; its SQLite and decoding failures leave it as
    the project's own error (see :func:`translate`)."""
    try:
        yield
    except ProjectError:
        raise
    except _TRANSLATED as exc:
        if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
            raise
        raise translate(path, exc, doing) from exc


def guard_errors(cls: type[_T]) -> type[_T]:
    """Make every public method and property of ``cls`` (a ProjectStore, whose instances have
    ``path``) raise the project's own errors (:func:`translate`) instead of raw SQLite or
    decoding errors. Class and static methods translate for themselves (they have no path
    before they have opened). Wrapping is per class: the mixins stay as they are."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, property):
            setattr(cls, name, property(
                _guarded(attr.fget) if attr.fget else None,
                _guarded(attr.fset) if attr.fset else None, attr.fdel, attr.__doc__))
        elif inspect.isfunction(attr):
            setattr(cls, name, _guarded(attr))
    return cls


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except ProjectError:
            raise
        except _TRANSLATED as exc:
            if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
                raise
            raise translate(self.path, exc) from exc

    return call


def lock_holder(path: str | os.PathLike) -> str:
    """Who holds the project's lock file, in words ("CellViewer by ana on host-1, process
    42"), or "" when there is no lock, it cannot be read or this process holds it."""
    try:
        from cellviewer.core.project.lock import LockOwner, lock_path_for

        data = lock_path_for(path).read_bytes()
        owner = LockOwner.from_bytes(data)
    except Exception:  # no lock, unreadable, or a lock format this code does not know
        return ""
    if owner is None:
        return ""
    if owner.pid == os.getpid() and owner.on_this_host:
        return ""  # this app holds the lock: whoever blocks the file is another program
    return f"{owner.app} by {owner.user} on {owner.host}, process {owner.pid}"


def read_only_reason(path: str | os.PathLike) -> str:
    """Why the project file ``path`` cannot be written ("" when it can, as far as the system
    tells): the file or its folder is read-only. ``os.access`` also answers for root on a
    read-only mount or an immutable file or folder."""
    path = Path(path)
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path.name} is read-only"
    if not _folder_writable(path):
        return f"its folder {path.parent} is read-only"
    return ""


def _folder_writable(path: Path) -> bool:
    return os.access(path.parent, os.W_OK | os.X_OK)


def _free_space(path: Path) -> str:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return "free space unknown"
    return f"{free / 1e6:,.1f} MB free on the disk of {path.parent}"
